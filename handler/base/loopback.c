/* The loopback rule; see loopback.h. */
#include "base/loopback.h"

#include <string.h>
#include <strings.h>

bool loopback_host(const char *host, size_t len) {
  static const char *const names[] = {"127.0.0.1", "localhost", "::1", "[::1]"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strlen(names[i]) == len && strncasecmp(host, names[i], len) == 0)
      return true;
  return false;
}

bool loopback_url(const char *url) {
  const char *host;
  if (strncasecmp(url, "http://", 7) == 0)
    host = url + 7;
  else if (strncasecmp(url, "https://", 8) == 0)
    host = url + 8;
  else
    return false;
  size_t len;
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (!close)
      return false;
    len = (size_t)(close - host) + 1;
  } else {
    len = strcspn(host, ":/?#");
  }
  return loopback_host(host, len) &&
         (host[len] == '\0' || host[len] == ':' || host[len] == '/');
}
