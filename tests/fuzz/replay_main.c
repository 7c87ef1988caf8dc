/*
 * replay_main: the main() of a fuzz harness in the normal (gcc, ASan + UBSan) build, where there is no libFuzzer.
 *
 * It runs LLVMFuzzerTestOneInput once on every file named on the command line or found (non-recursively, sorted by
 * name so a failure is reproducible) in a directory named there: ctest gives it tests/fuzz/corpus/<target>/, so every
 * committed seed and every minimised crash input is replayed as a regression test on every build. A harness reports
 * a violated property with __builtin_trap() and the sanitizers abort on memory errors, so "ran every input and
 * returned" is the pass condition. An empty corpus is a failure: a test that replays nothing proves nothing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reads a whole file into a malloc'd buffer (exactly its size, so ASan sees reads past the end). -1 on error. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int ret = -1;

    *out = NULL;
    if (f == NULL || fstat(fileno(f), &st) != 0)
        goto Exit;
    *len = (size_t)st.st_size;
    if ((*out = malloc(*len != 0 ? *len : 1)) == NULL || fread(*out, 1, *len, f) != *len)
        goto Exit;
    ret = 0;
Exit:
    if (f != NULL)
        fclose(f);
    return ret;
}

static int run_file(const char *path)
{
    uint8_t *data;
    size_t len;

    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        return -1;
    }
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Runs every regular file of dir; returns how many, or -1. */
static long run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    long ran = 0;
    char path[4096];
    struct stat st;

    if (n < 0) {
        fprintf(stderr, "replay: cannot read directory %s\n", dir);
        return -1;
    }
    for (int i = 0; i != n; ++i) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0)
                ran = -1;
            else if (ran >= 0)
                ++ran;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0, n;
    struct stat st;

    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; ++i) {
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            n = run_dir(argv[i]);
        else
            n = run_file(argv[i]) == 0 ? 1 : -1;
        if (n < 0)
            return 1;
        total += n;
    }
    fprintf(stderr, "replay: %ld inputs, no failure\n", total);
    return total > 0 ? 0 : 1;
}
