/*
 * sha256.h - SHA-256 (FIPS 180-4), streaming, no libc.
 *
 * Freestanding: only <stdint.h>/<stddef.h>, no calls out, so the same file
 * builds into purgatory.ro and into a hosted test program that compares it
 * with hashlib.
 */
#ifndef PURGATORY_SHA256_H
#define PURGATORY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE	32
#define SHA256_BLOCK_SIZE	64

struct sha256_ctx {
	uint32_t h[8];			/* chaining state H0..H7 */
	uint64_t bytes;			/* message length so far */
	uint8_t block[SHA256_BLOCK_SIZE];	/* partial block, bytes % 64 used */
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_SIZE]);

#endif /* PURGATORY_SHA256_H */
