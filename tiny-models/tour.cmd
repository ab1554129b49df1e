# tiny-models/tour.cmd: the scripted tour `make demo` runs on tiny-models/seek-v3-mini when stdin
# is not a terminal (`./seek repl tiny-models/seek-v3-mini --script tiny-models/tour.cmd`).
# The model: what it is, then a prompt run through it with every stage captured.
where
prompt And God said unto Moses, Go in unto Pharaoh, and tell him
# Layer 1, stage by stage: the residual stream in, RMSNorm, the MLA query path and the
# compressed KV latent, decoupled RoPE, attention, then the router and the experts.
goto blocks.1.hook_resid_pre
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
step
# What layer 1's heads attend to, and which experts each token was routed to ('!' marks experts
# chosen only because of the auxiliary-loss-free balancing bias).
attn 1
route 1
# One token's experts through every layer, and the latent KV cache against MHA's.
path 4
latent 1
# What comes next, then 40 tokens of greedy text.
top 5
gen 40
