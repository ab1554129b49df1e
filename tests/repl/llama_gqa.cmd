# DeepSeek LLM / V1 (llama): dense FFN and grouped-query attention; MoE and MLA views say so.
load tests/fixtures/llama_gqa
ids 3 1 4 1 5 9 2 6
stages *.0.attn.*
attn 1 2
route 0
path 0
latent 0
set attn absorb
ablate expert 0 0
ablate head 1 0
top 3
gen 4
