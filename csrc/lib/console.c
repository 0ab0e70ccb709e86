/*
 * lib/console.c - polled output on COM1 (or kit_console_port).
 *
 * The kernel's serial driver left the 8250/16550 programmed (baud rate,
 * 8N1, FIFO); the kit must not reprogram it, only wait for the transmit
 * holding register to empty before each byte.  No UART at all reads as
 * 0xff, which looks "empty": output then just goes nowhere.  The wait is
 * bounded so that a wedged UART cannot hang the payload.
 */
#include <stdint.h>
#include <kit/console.h>
#include <kit/io.h>

#define COM1		0x3f8
#define UART_THR	0	/* transmit holding register */
#define UART_LSR	5	/* line status register */
#define UART_LSR_THRE	0x20	/* THR empty */
#define UART_SPINS	1000000	/* >= ~1 s of port reads */

uint16_t kit_console_port = COM1;
static char last = '\n';	/* persists across calls, like all image data */

static void uart_tx(uint8_t b)
{
	uint16_t port = kit_console_port;

	if (!port)
		return;
	for (uint32_t n = 0; n < UART_SPINS; n++)
		if (inb(port + UART_LSR) & UART_LSR_THRE)
			break;
	outb(port + UART_THR, b);
}

void kit_putc(char c)
{
	if (c == '\n')
		uart_tx('\r');
	uart_tx((uint8_t)c);
	last = c;
}

void kit_puts(const char *s)
{
	while (*s)
		kit_putc(*s++);
}

void kit_console_newline(void)
{
	if (last != '\n')
		kit_putc('\n');
}
