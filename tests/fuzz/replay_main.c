/* Replays fuzz inputs without libFuzzer: each argument is a file, or a folder
 * whose files are all replayed. ctest runs every target this way over its
 * corpus, so crashes found once stay fixed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/files.h"

#define REPLAY_MAX_INPUT (64u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  char *buf = NULL;
  size_t len = 0;
  if (files_read(path, REPLAY_MAX_INPUT, &buf, &len, NULL) != RESULT_OK) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    return 1;
  }
  LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
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
