/*
 * main.c - flags, --check, signals, start/stop order.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("kube-watch-bridge %s\n", KWB_VERSION);
            return 0;
        }
    }
    fprintf(stderr, "kube-watch-bridge: not yet able to run\n");
    return 2;
}
