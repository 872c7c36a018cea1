/* Replays fuzz inputs without libFuzzer: each argument is a file, or a folder
 * whose files are all replayed. ctest runs every target this way over its
 * corpus, so crashes found once stay fixed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *grown = realloc(buf, cap *= 2);
      if (!grown) {
        free(buf);
        buf = NULL;
      }
      buf = grown;
    }
  }
  fclose(f);
  if (!buf)
    return 1;
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

static int replay(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: no such file or folder %s\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    ++*count;
    return replay_file(path);
  }
  DIR *dir = opendir(path);
  if (!dir)
    return 1;
  int failed = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (e->d_name[0] == '.')
      continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    failed |= replay(child, count);
  }
  closedir(dir);
  return failed;
}

int main(int argc, char **argv) {
  int failed = 0, count = 0;
  for (int i = 1; i < argc; i++)
    failed |= replay(argv[i], &count);
  printf("replayed %d inputs\n", count);
  return failed || count == 0;
}
