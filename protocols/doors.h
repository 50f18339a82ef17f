/*
 * doors.h: the entry point of each door, as the daemon's router calls them.
 * The router (daemon/http.c) picks the door by path prefix and listener.
 */
#ifndef ENROLLD_DOORS_H
#define ENROLLD_DOORS_H

#include "request.h"

/* /api/v1/... */
void admin_handle(const struct http_request *req, struct door_context *ctx,
    struct http_response *resp);
/* /acme/<endpoint>/... (RFC 8555; protocols/acme/acme.c) */
void acme_handle(const struct http_request *req, struct door_context *ctx,
    struct http_response *resp);
/* /crl/<issuer>.crl (DER, application/pkix-crl) */
void crl_handle(const struct http_request *req, struct door_context *ctx,
    struct http_response *resp);

#endif
