# A walk through a tiny DeepSeek-V3: stages, attention, routing, the latent, predictions.
load tests/fixtures/v3
ids 5 17 42 99 3 200 7
where
step
step 3
back
s
goto blocks.1.mlp.hook_router_scores
show
show blocks.0.attn.hook_z [0, 1:3, 0, :]
show model.layers.1.mlp.gate.e_score_correction_bias [0:8]
stages *.0.attn.*
attn 0 1
route 1
path 2
latent 0
top 5
set attn absorb
top 3
set attn naive
gen 3
ablate head 0 1
ablate expert 1 28
route 1
ablate
ablate off
set
help route
quit
