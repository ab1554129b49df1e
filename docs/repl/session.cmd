load tests/fixtures/v3
ids 5 17 42 99 3 200 7
goto blocks.1.mlp.hook_router_choice
attn 0
png docs/repl/attn.png
route 1
png docs/repl/route.png
path 2
png docs/repl/path.png
latent 0
png docs/repl/latent.png
top 8
png docs/repl/top.png
