/* The start-up floor: the least a custom handler can do before the Functions
 * host sees it ready. Binds 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, listens,
 * and answers every request on each connection with an empty 200 (keep-alive
 * until the client closes). Single thread, blocking; exits on SIGTERM. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  const char *p = getenv("FUNCTIONS_CUSTOMHANDLER_PORT");
  int port = p ? atoi(p) : 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (port <= 0 || fd < 0)
    return 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0)
    return 1;
  static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0)
      continue;
    char buf[8192];
    ssize_t n;
    while ((n = recv(c, buf, sizeof buf, 0)) > 0)
      if (memmem(buf, (size_t)n, "\r\n\r\n", 4) &&
          send(c, answer, sizeof answer - 1, 0) < 0)
        break;
    close(c);
  }
}
