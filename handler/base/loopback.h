/* Which hosts are this machine: the one rule for the places that allow plain
 * http (the transport, the ARM endpoint and discovery URLs, ingestion
 * redirects), so that local stand-ins and App Service's managed identity
 * endpoint work and nothing else goes out unencrypted. Pure; thread-safe. */
#ifndef HANDLER_LOOPBACK_H
#define HANDLER_LOOPBACK_H

#include <stdbool.h>
#include <stddef.h>

/* True for the first `len` bytes of a URL's host naming the loopback host:
 * "127.0.0.1", "localhost" (any case), "::1" or "[::1]". */
bool loopback_host(const char *host, size_t len);

/* True when `url` is http:// or https:// to a loopback host (any port, any path). */
bool loopback_url(const char *url);

#endif
