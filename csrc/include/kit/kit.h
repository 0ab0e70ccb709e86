/* kit/kit.h - everything a payload usually needs. */
#ifndef KIT_KIT_H
#define KIT_KIT_H

#include <kit/entry.h>
#include <kit/bios.h>
#include <kit/call.h>
#include <kit/console.h>
#include <kit/cpu.h>
#include <kit/fault.h>
#include <kit/io.h>
#include <kit/string.h>

#endif /* KIT_KIT_H */
