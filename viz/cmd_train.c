/* cmd_train.c: `seek grad` (and, with the training loop, `seek train`).
 * Errors are one line on stderr, "seek CMD: reason", exit 1 (bad input) or 2 (usage). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "commands.h"
#include "model.h"
#include "safetensors.h"

/* "1,2,3;4,5,6" -> ids (B, T); shared with cmd_model.c's format */
int parse_id_batch(const char *s, int **ids, int *B, int *T, SeekErr *err);

/* seek grad DIR --ids "..." -o grads.safetensors: the loss transformers computes for
 * labels = input_ids, and the gradient of every parameter under the checkpoint's names. */
int cmd_grad(int argc, char **argv) {
    const char *dir = NULL, *ids_s = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--ids") ? &ids_s : !strcmp(argv[i], "-o") ? &out : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek grad: %s needs a value\n", argv[i]);
                return 2;
            }
            *dst = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "seek grad: unknown option '%s' (see 'seek help')\n", argv[i]);
            return 2;
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "seek grad: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !ids_s || !out) {
        fprintf(stderr, "seek grad: expected: seek grad DIR --ids \"1,2,3;4,5,6\" -o grads.safetensors (see 'seek help')\n");
        return 2;
    }
    SeekErr err;
    int *ids = NULL, B, T;
    if (parse_id_batch(ids_s, &ids, &B, &T, &err)) {
        fprintf(stderr, "seek grad: %s\n", err.msg);
        return 1;
    }
    Model m, g;
    int rc = model_load(&m, dir, &err);
    if (rc) {
        free(ids);
        fprintf(stderr, "seek grad: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; !rc && i < B * T; i++)
        if (ids[i] >= m.cfg.V) rc = seek_fail(&err, "--ids: token id %d is out of range [0, %d) (vocab_size)", ids[i], m.cfg.V);
    if (!rc && T < 2) rc = seek_fail(&err, "--ids: sequences need at least 2 tokens to predict one (got %d)", T);
    if (!rc && T > m.cfg.max_pos) rc = seek_fail(&err, "--ids: %d tokens exceed max_position_embeddings %d", T, m.cfg.max_pos);
    int have_g = 0;
    if (!rc && (rc = model_init(&g, &m.cfg, &err)) == 0) have_g = 1;
    double loss = 0;
    if (!rc) rc = model_loss_grad(&m, &g, ids, B, T, &loss, &err);
    if (!rc) {
        StWriteTensor *ts = calloc(g.n_params, sizeof *ts);
        if (!ts) rc = seek_fail(&err, "out of memory");
        size_t nw = 0; /* MTP modules only when the model has them */
        for (size_t i = 0; !rc && i < g.n_params; i++) {
            if (g.params[i].mtp && !m.has_mtp) continue;
            StWriteTensor *t = &ts[nw++];
            t->name = g.params[i].name;
            t->dtype = ST_F32;
            t->ndim = g.params[i].ndim;
            for (int k = 0; k < g.params[i].ndim; k++) t->shape[k] = g.params[i].shape[k];
            t->data = g.params[i].ptr;
        }
        char loss_s[32];
        snprintf(loss_s, sizeof loss_s, "%.9g", loss);
        const char *meta[] = {"format", "pt", "loss", loss_s, "producer", "seek.c grad"};
        if (!rc) rc = st_write(out, ts, nw, meta, 3, &err);
        free(ts);
    }
    if (!rc) printf("loss %.6f\n", loss);
    if (have_g) model_free(&g);
    model_free(&m);
    free(ids);
    if (rc) {
        fprintf(stderr, "seek grad: %s\n", err.msg);
        return 1;
    }
    return 0;
}
