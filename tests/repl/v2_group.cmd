# DeepSeek-V2 with group-limited greedy routing (softmax scores, no balancing bias).
load tests/fixtures/v2_group
ids 9 8 7 6 5
route 1
path 0
latent 1
attn 1
top 3
