# The other fixtures: YaRN + shards, no q compression (BF16), FP8 block scales, V2 greedy.
load tests/fixtures/v3_yarn
ids 10 20 30 40
route 1
latent 0
top 2
load tests/fixtures/v3_noq
ids 10 20 30 40
stages *.1.attn.hook_q*
route 2
top 2
load tests/fixtures/v3_fp8
ids 10 20 30 40
route 1
top 2
load tests/fixtures/v2_greedy
ids 10 20 30 40
route 1
path 3
top 2
