// The project's MPS2-AN385 board: MicroPython's qemu port configuration, plus what the
// agent needs. Found before the port's own mpconfigport.h because mpconfigboard.mk puts this
// folder first on the include path; #include_next then reads the port's file unchanged.
#include_next <mpconfigport.h>

// Sleep until the next interrupt (SysTick every ms, UART RX) instead of spinning: an idle
// agent then costs the host almost no CPU.
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) __asm__ volatile ("wfi")
