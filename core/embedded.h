/* embedded.h: files compiled into the binary (see core/embed.cmake). */
#ifndef ENROLLD_EMBEDDED_H
#define ENROLLD_EMBEDDED_H

struct embedded_file {
	const char *name; /* "001_init.sql" */
	const char *text;
};
/* Sorted by name, terminated by { NULL, NULL }. */
extern const struct embedded_file embedded_migrations[];
/* The OpenAPI 3 document of the admin API (protocols/admin/openapi.json). */
extern const char *const embedded_openapi;

#endif
