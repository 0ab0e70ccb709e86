/*
 * serial.c - polled 8250/16550 output at purgatory_serial_port.
 *
 * Never reprograms the UART: the previous kernel left it at its baud rate.
 * On its own so that a hosted test can link purgatory.o with a serial_putc
 * that writes to stdout.
 */
#include <kit/io.h>

#include "purgatory.h"

/* Wait for THR empty (LSR bit 5), bounded: a missing UART reads 0xff anyway,
 * and a wedged one must not keep purgatory from its message or its halt. */
void serial_putc(char c)
{
	uint16_t port = purgatory_serial_port;
	unsigned spin;

	if (!port)
		return;
	for (spin = 0; spin < 100000 && !(inb(port + 5) & 0x20); spin++)
		;
	outb(port, (uint8_t)c);
}
