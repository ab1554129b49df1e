/* cmd_tokenize.c: placeholder until the tokenizer issue lands its implementation. */
#include <stdio.h>

#include "commands.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "seek tokenize: not built yet (tokenizer issue)\n");
    return 1;
}

int cmd_detokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "seek detokenize: not built yet (tokenizer issue)\n");
    return 1;
}
