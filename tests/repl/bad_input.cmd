# Bad input: each line is one error with a hint; the state never changes. (Commands without
# a model: tests/cli_repl.sh, with a seek that has no default model.)
load /nonexistent
load tests/fixtures/v3
group 1
update 1e-3
tokens 0
frobnicate
st
ids
ids 1 256
ids 1 -1
ids 12abc
ids 5 17 42
attn
attn 3
attn -1
attn 0 4
attn 0 1 2
step 1e309
step nan
step inf
step -1
step 12abc
step 3.5
step 0x10
step 99999999999999999999
step -0
route 0
route 1 2
path 3
latent 3
top 0
top 3 3
gen 0
gen 1000
ablate head 0 4
ablate expert 0 1
ablate expert 1 32
ablate off
ablate sideways 1 2
set temperature nan
set temperature 1e309
set top_p 0
set seed -1
set colour pink
show nosuch
show blocks.0.attn.hook_z [0, 9]
goto 999
goto attn
help nosuch
prompt hello
png /nonexistent/dir/x.png
top 2
png /nonexistent/dir/x.png
where
escape [31mred[0m and a bell 
ÿþbinary
where
