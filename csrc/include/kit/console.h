/*
 * kit/console.h - polled output on the first serial port (8250/16550 at
 * 0x3f8).  The kernel has already programmed the line (baud rate, 8N1);
 * the kit only waits for an empty transmit register before each byte.
 * "\n" goes out as "\r\n".
 */
#ifndef KIT_CONSOLE_H
#define KIT_CONSOLE_H

#include <stdarg.h>
#include <stdint.h>

/* The 8250's I/O port, COM1 unless the program says otherwise; 0: output goes
 * nowhere (the purgatory sets it from its purgatory_serial_port parameter). */
extern uint16_t kit_console_port;

void kit_putc(char c);
void kit_puts(const char *s);	/* no newline added */

/*
 * printf subset: %s %c %d %i %u %x %X %p %%, flags '0' and '-', a decimal
 * width, length 'l' and 'z' (long and size_t: 32 bits on i386, 64 on
 * x86_64), 'll' and 'j' (64 bits).  No precision, no floating point.  %p
 * prints 0x and all hex digits of a pointer (8 on i386, 16 on x86_64).
 * Returns the number of characters written (before "\r" expansion).
 */
int kit_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kit_vprintf(const char *fmt, va_list ap);
/* The same formatting, each character to put(); returns the count. */
int kit_vformat(void (*put)(char), const char *fmt, va_list ap);

/* Start a new line unless the last character written ended one. */
void kit_console_newline(void);

#endif /* KIT_CONSOLE_H */
