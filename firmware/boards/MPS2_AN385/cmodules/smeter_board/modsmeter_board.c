// smeter_board: what the agent needs from the MPS2-AN385 board (Cortex-M3, run by
// qemu-system-arm) that MicroPython's qemu port does not give:
//   UART(n)      CMSDK APB UART n (1..4) as a non-blocking byte stream: RX interrupt into a
//                ring buffer; any(), readinto(buf[, n]) -> count (0: nothing yet), write(buf).
//   HostFile     a file on the host through ARM semihosting (QEMU -semihosting): the board's
//                persistent flash region. Every write is one host write(2), so a SIGKILL of
//                QEMU keeps it whole (docs/store-and-forward.md, "power cut" = kill).
//   remove/rename/stat_size  host-path helpers for firmware/boards/MPS2_AN385/modules/hostfs.py
//   wall_ms()    host wall clock in ms (semihosting SYS_TIME second edges + SYS_ELAPSED),
//                sync_wall(timeout_ms) waits for a second edge; set_wall_ms(ms) sets it.
//   elapsed_ms() host monotonic ms since QEMU started (30-bit small int, wraps like ticks).
//   sleep_ms(ms) the agent loop's idle wait: wfi until the SysTick or a UART interrupt, so an
//                idle board costs the host almost no CPU (the port's time.sleep_ms spins).
#include <string.h>

#include "py/runtime.h"
#include "py/mphal.h"
#include "py/stream.h"
#include "py/mperrno.h"
#include "py/objstr.h"

// ---- semihosting ------------------------------------------------------------------------

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_SEEK 0x0A
#define SYS_FLEN 0x0C
#define SYS_REMOVE 0x0E
#define SYS_RENAME 0x0F
#define SYS_TIME 0x11
#define SYS_ERRNO 0x13
#define SYS_ELAPSED 0x30

static int semi(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__ ("r0") = op;
    register const void *r1 __asm__ ("r1") = arg;
    __asm__ volatile ("bkpt 0xAB" : "+r" (r0) : "r" (r1) : "memory");
    return (int)r0;
}

static int semi_errno(void) {
    int e = semi(SYS_ERRNO, NULL);
    return e > 0 ? e : MP_EIO;
}

static uint64_t elapsed_ns(void) {
    uint32_t v[2] = {0, 0};
    semi(SYS_ELAPSED, v);
    return ((uint64_t)v[1] << 32) | v[0];
}

// ---- clocks -----------------------------------------------------------------------------

static int64_t wall_base_ms;   // wall ms = base + elapsed ms
static uint32_t wall_last_s;
static int wall_state;         // 0 nothing, 1 hint or coarse, 2 synced on a second edge
static int64_t wall_prev;      // never go backwards

static int64_t wall_now_ms(void) {
    int64_t e = (int64_t)(elapsed_ns() / 1000000u);
    uint32_t t = (uint32_t)semi(SYS_TIME, NULL);
    if (wall_state == 0) {
        wall_base_ms = (int64_t)t * 1000 + 500 - e;
        wall_state = 1;
    } else if (wall_state == 1 && t != wall_last_s && wall_last_s != 0) {
        wall_base_ms = (int64_t)t * 1000 - e;  // the second just began (within one call)
        wall_state = 2;
    }
    wall_last_s = t;
    int64_t w = wall_base_ms + e;
    if (w < wall_prev) {
        w = wall_prev;
    }
    wall_prev = w;
    return w;
}

static mp_obj_t smeter_wall_ms(void) {
    return mp_obj_new_int_from_ll(wall_now_ms());
}
static MP_DEFINE_CONST_FUN_OBJ_0(smeter_wall_ms_obj, smeter_wall_ms);

static mp_obj_t smeter_set_wall_ms(mp_obj_t ms_in) {
    // The launcher's wall time at start; replaced by the first second edge seen.
    long long ms = mp_obj_get_ll(ms_in);
    int64_t e = (int64_t)(elapsed_ns() / 1000000u);
    wall_base_ms = (int64_t)ms - e;
    wall_last_s = (uint32_t)semi(SYS_TIME, NULL);
    wall_state = 1;
    wall_prev = 0;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_set_wall_ms_obj, smeter_set_wall_ms);

static mp_obj_t smeter_sync_wall(mp_obj_t timeout_in) {
    // Wait (at most timeout ms of host time) for the host's second to change, then the wall
    // clock is exact to a semihosting call: the board has no RTC of its own.
    uint64_t end = elapsed_ns() + (uint64_t)mp_obj_get_int(timeout_in) * 1000000u;
    wall_now_ms();
    while (wall_state != 2 && elapsed_ns() < end) {
        wall_now_ms();
    }
    wall_prev = 0;
    return mp_obj_new_bool(wall_state == 2);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_sync_wall_obj, smeter_sync_wall);

static mp_obj_t smeter_exit(mp_obj_t code_in) {
    // End QEMU with this status (semihosting SYS_EXIT): a run with a stop time is over.
    extern void exit(int);
    exit(mp_obj_get_int(code_in));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_exit_obj, smeter_exit);

static mp_obj_t smeter_sleep_ms(mp_obj_t ms_in) {
    mp_int_t ms = mp_obj_get_int(ms_in);
    mp_uint_t start = mp_hal_ticks_ms();
    while ((mp_int_t)(mp_hal_ticks_ms() - start) < ms) {
        mp_handle_pending(true);
        __asm__ volatile ("wfi");
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_sleep_ms_obj, smeter_sleep_ms);

static mp_obj_t smeter_wall_synced(void) {
    return mp_obj_new_bool(wall_state == 2);
}
static MP_DEFINE_CONST_FUN_OBJ_0(smeter_wall_synced_obj, smeter_wall_synced);

static mp_obj_t smeter_elapsed_ms(void) {
    return MP_OBJ_NEW_SMALL_INT((mp_int_t)((elapsed_ns() / 1000000u) & 0x3FFFFFFF));
}
static MP_DEFINE_CONST_FUN_OBJ_0(smeter_elapsed_ms_obj, smeter_elapsed_ms);

// ---- UARTs ------------------------------------------------------------------------------

typedef struct {
    volatile uint32_t DATA;
    volatile uint32_t STATE;
    volatile uint32_t CTRL;
    volatile uint32_t INTSTATUS;
    volatile uint32_t BAUDDIV;
} cmsdk_uart_t;

#define ST_TXFULL (1 << 0)
#define ST_RXFULL (1 << 1)
#define CTRL_TXEN (1 << 0)
#define CTRL_RXEN (1 << 1)
#define CTRL_RXINTEN (1 << 3)
#define INT_RX (1 << 1)

#define RING 512  // power of two

typedef struct {
    mp_obj_base_t base;
    cmsdk_uart_t *regs;
    uint8_t id;
    volatile uint16_t head;  // written by the interrupt
    volatile uint16_t tail;  // written by readinto
    volatile uint32_t dropped;
    uint8_t ring[RING];
} smeter_uart_obj_t;

// AN385 (QEMU hw/arm/mps2.c): UART0..4 bases and RX interrupt numbers.
static const uint32_t uart_base[5] = {0x40004000, 0x40005000, 0x40006000, 0x40007000, 0x40009000};
static const uint8_t uart_rx_irq[5] = {0, 2, 4, 18, 20};

static smeter_uart_obj_t uart_objs[5];  // static: the ISR must never see a moved object

#define NVIC_ISER ((volatile uint32_t *)0xE000E100)
#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08)
#define N_VECTORS 48

static uint32_t ram_vectors[N_VECTORS] __attribute__((aligned(256)));

static void uart_drain(smeter_uart_obj_t *u) {
    // Clear the RX interrupt first, then empty the data register: a byte that lands after
    // the clear raises the interrupt again (clearing after the loop could swallow its
    // interrupt and leave the UART full and silent for good).
    cmsdk_uart_t *r = u->regs;
    r->INTSTATUS = INT_RX;  // write 1 to clear
    while (r->STATE & ST_RXFULL) {
        uint8_t b = (uint8_t)r->DATA;
        uint16_t h = u->head;
        uint16_t n = (h + 1) & (RING - 1);
        if (n == u->tail) {
            u->dropped++;
        } else {
            u->ring[h] = b;
            u->head = n;
        }
    }
}

static void uart_isr(int i) {
    uart_drain(&uart_objs[i]);
}

static void uart_poll(smeter_uart_obj_t *u) {
    // Also drain from thread context (interrupts masked): a lost interrupt can never stall
    // the line.
    __asm__ volatile ("cpsid i" ::: "memory");
    uart_drain(u);
    __asm__ volatile ("cpsie i" ::: "memory");
}

static void uart1_isr(void) { uart_isr(1); }
static void uart2_isr(void) { uart_isr(2); }
static void uart3_isr(void) { uart_isr(3); }
static void uart4_isr(void) { uart_isr(4); }
static void (*const isrs[5])(void) = {NULL, uart1_isr, uart2_isr, uart3_isr, uart4_isr};

static void vectors_to_ram(void) {
    // The port's vector table (mcu/arm/startup.c) has the 16 core entries only: copy it and
    // add the UART RX interrupts.
    if (SCB_VTOR == (uint32_t)ram_vectors) {
        return;
    }
    const uint32_t *old = (const uint32_t *)SCB_VTOR;
    extern void Default_Handler(void);
    for (int i = 0; i < N_VECTORS; i++) {
        ram_vectors[i] = i < 16 ? old[i] : (uint32_t)&Default_Handler;
    }
    __asm__ volatile ("dsb");
    SCB_VTOR = (uint32_t)ram_vectors;
    __asm__ volatile ("dsb; isb");
}

static mp_obj_t smeter_uart_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 1, 1, false);
    mp_int_t id = mp_obj_get_int(args[0]);
    if (id < 1 || id > 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("UART id must be 1..4 (UART0 is the REPL)"));
    }
    smeter_uart_obj_t *u = &uart_objs[id];
    if (u->regs == NULL) {
        u->base.type = type;
        u->id = (uint8_t)id;
        u->regs = (cmsdk_uart_t *)uart_base[id];
        u->head = u->tail = 0;
        vectors_to_ram();
        int irq = uart_rx_irq[id];
        ram_vectors[16 + irq] = (uint32_t)isrs[id];
        u->regs->BAUDDIV = 16;
        u->regs->CTRL = CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN;
        NVIC_ISER[irq >> 5] = 1u << (irq & 31);
        uart_poll(u);  // a byte that was already waiting
    }
    return MP_OBJ_FROM_PTR(u);
}

static mp_uint_t uart_avail(smeter_uart_obj_t *u) {
    return (u->head - u->tail) & (RING - 1);
}

static mp_obj_t smeter_uart_any(mp_obj_t self_in) {
    smeter_uart_obj_t *u = MP_OBJ_TO_PTR(self_in);
    uart_poll(u);
    return MP_OBJ_NEW_SMALL_INT(uart_avail(u));
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_uart_any_obj, smeter_uart_any);

static mp_obj_t smeter_uart_readinto(size_t n_args, const mp_obj_t *args) {
    // Copy what has arrived (at most n) into the caller's buffer; never blocks, never allocates.
    smeter_uart_obj_t *u = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(args[1], &bi, MP_BUFFER_WRITE);
    mp_uint_t want = bi.len;
    if (n_args > 2) {
        mp_int_t n = mp_obj_get_int(args[2]);
        if (n >= 0 && (mp_uint_t)n < want) {
            want = n;
        }
    }
    uint8_t *dst = bi.buf;
    mp_uint_t got = 0;
    uart_poll(u);
    uint16_t t = u->tail;
    while (got < want && t != u->head) {
        dst[got++] = u->ring[t];
        t = (t + 1) & (RING - 1);
    }
    u->tail = t;
    return MP_OBJ_NEW_SMALL_INT(got);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(smeter_uart_readinto_obj, 2, 3, smeter_uart_readinto);

static mp_obj_t smeter_uart_write(mp_obj_t self_in, mp_obj_t buf_in) {
    smeter_uart_obj_t *u = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(buf_in, &bi, MP_BUFFER_READ);
    const uint8_t *p = bi.buf;
    for (size_t i = 0; i < bi.len; i++) {
        while (u->regs->STATE & ST_TXFULL) {
        }
        u->regs->DATA = p[i];
    }
    return MP_OBJ_NEW_SMALL_INT(bi.len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(smeter_uart_write_obj, smeter_uart_write);

static mp_obj_t smeter_uart_dropped(mp_obj_t self_in) {
    smeter_uart_obj_t *u = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(u->dropped);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_uart_dropped_obj, smeter_uart_dropped);

static const mp_rom_map_elem_t smeter_uart_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_any), MP_ROM_PTR(&smeter_uart_any_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&smeter_uart_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&smeter_uart_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_dropped), MP_ROM_PTR(&smeter_uart_dropped_obj) },
};
static MP_DEFINE_CONST_DICT(smeter_uart_locals, smeter_uart_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    smeter_uart_type, MP_QSTR_UART, MP_TYPE_FLAG_NONE,
    make_new, smeter_uart_make_new,
    locals_dict, &smeter_uart_locals
    );

// ---- host files (the flash region) -------------------------------------------------------

typedef struct {
    mp_obj_base_t base;
    int fd;     // -1 when closed
    mp_int_t pos;
} host_file_obj_t;

static int path_mode(const char *mode) {
    // semihosting modes: r rb r+ r+b w wb w+ w+b a ab a+ a+b = 0..11
    int m = 0;
    int plus = strchr(mode, '+') != NULL;
    if (strchr(mode, 'w')) {
        m = 4;
    } else if (strchr(mode, 'a')) {
        m = 8;
    }
    return m + (plus ? 3 : 1);  // always binary on the host side
}

static mp_obj_t host_open(const mp_obj_type_t *type, mp_obj_t path_in, const char *mode) {
    size_t len;
    const char *path = mp_obj_str_get_data(path_in, &len);
    uint32_t a[3] = {(uint32_t)path, (uint32_t)path_mode(mode), (uint32_t)len};
    int fd = semi(SYS_OPEN, a);
    if (fd < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    host_file_obj_t *f = mp_obj_malloc(host_file_obj_t, type);
    f->fd = fd;
    f->pos = 0;
    if (strchr(mode, 'a')) {
        f->pos = semi(SYS_FLEN, a);
    }
    return MP_OBJ_FROM_PTR(f);
}

static mp_uint_t host_file_read(mp_obj_t o, void *buf, mp_uint_t size, int *errcode) {
    host_file_obj_t *f = MP_OBJ_TO_PTR(o);
    if (f->fd < 0) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    uint32_t a[3] = {(uint32_t)f->fd, (uint32_t)buf, (uint32_t)size};
    int left = semi(SYS_READ, a);
    if (left < 0 || (mp_uint_t)left > size) {
        *errcode = semi_errno();
        return MP_STREAM_ERROR;
    }
    f->pos += size - left;
    return size - left;
}

static mp_uint_t host_file_write(mp_obj_t o, const void *buf, mp_uint_t size, int *errcode) {
    host_file_obj_t *f = MP_OBJ_TO_PTR(o);
    if (f->fd < 0) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    uint32_t a[3] = {(uint32_t)f->fd, (uint32_t)buf, (uint32_t)size};
    int left = semi(SYS_WRITE, a);
    if (left != 0) {
        *errcode = left < 0 ? semi_errno() : MP_ENOSPC;
        return MP_STREAM_ERROR;
    }
    f->pos += size;
    return size;
}

static mp_uint_t host_file_ioctl(mp_obj_t o, mp_uint_t request, uintptr_t arg, int *errcode) {
    host_file_obj_t *f = MP_OBJ_TO_PTR(o);
    if (request == MP_STREAM_CLOSE) {
        if (f->fd >= 0) {
            uint32_t a[1] = {(uint32_t)f->fd};
            semi(SYS_CLOSE, a);
            f->fd = -1;
        }
        return 0;
    }
    if (f->fd < 0) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    if (request == MP_STREAM_FLUSH) {
        return 0;  // each write already reached the host file
    }
    if (request == MP_STREAM_SEEK) {
        struct mp_stream_seek_t *s = (struct mp_stream_seek_t *)arg;
        mp_int_t base = 0;
        if (s->whence == 1) {
            base = f->pos;
        } else if (s->whence == 2) {
            uint32_t a[1] = {(uint32_t)f->fd};
            base = semi(SYS_FLEN, a);
        }
        mp_int_t to = base + s->offset;
        if (to < 0) {
            *errcode = MP_EINVAL;
            return MP_STREAM_ERROR;
        }
        uint32_t a[2] = {(uint32_t)f->fd, (uint32_t)to};
        if (semi(SYS_SEEK, a) != 0) {
            *errcode = semi_errno();
            return MP_STREAM_ERROR;
        }
        f->pos = to;
        s->offset = to;
        return 0;
    }
    *errcode = MP_EINVAL;
    return MP_STREAM_ERROR;
}

static const mp_rom_map_elem_t host_file_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&mp_stream_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&mp_stream_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_readline), MP_ROM_PTR(&mp_stream_unbuffered_readline_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&mp_stream_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_seek), MP_ROM_PTR(&mp_stream_seek_obj) },
    { MP_ROM_QSTR(MP_QSTR_tell), MP_ROM_PTR(&mp_stream_tell_obj) },
    { MP_ROM_QSTR(MP_QSTR_flush), MP_ROM_PTR(&mp_stream_flush_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&mp_stream_close_obj) },
    { MP_ROM_QSTR(MP_QSTR___enter__), MP_ROM_PTR(&mp_identity_obj) },
    { MP_ROM_QSTR(MP_QSTR___exit__), MP_ROM_PTR(&mp_stream___exit___obj) },
};
static MP_DEFINE_CONST_DICT(host_file_locals, host_file_locals_table);

static const mp_stream_p_t host_file_stream_p = {
    .read = host_file_read, .write = host_file_write, .ioctl = host_file_ioctl,
};
static const mp_stream_p_t host_text_stream_p = {
    .read = host_file_read, .write = host_file_write, .ioctl = host_file_ioctl, .is_text = true,
};

MP_DEFINE_CONST_OBJ_TYPE(
    host_file_type, MP_QSTR_HostFile, MP_TYPE_FLAG_ITER_IS_STREAM,
    protocol, &host_file_stream_p,
    locals_dict, &host_file_locals
    );
MP_DEFINE_CONST_OBJ_TYPE(
    host_text_type, MP_QSTR_HostTextFile, MP_TYPE_FLAG_ITER_IS_STREAM,
    protocol, &host_text_stream_p,
    locals_dict, &host_file_locals
    );

static mp_obj_t smeter_open(mp_obj_t path_in, mp_obj_t mode_in) {
    const char *mode = mp_obj_str_get_str(mode_in);
    return host_open(strchr(mode, 'b') ? &host_file_type : &host_text_type, path_in, mode);
}
static MP_DEFINE_CONST_FUN_OBJ_2(smeter_open_obj, smeter_open);

static mp_obj_t smeter_remove(mp_obj_t path_in) {
    size_t len;
    const char *path = mp_obj_str_get_data(path_in, &len);
    uint32_t a[2] = {(uint32_t)path, (uint32_t)len};
    if (semi(SYS_REMOVE, a) != 0) {
        mp_raise_OSError(semi_errno());
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_remove_obj, smeter_remove);

static mp_obj_t smeter_rename(mp_obj_t from_in, mp_obj_t to_in) {
    // One host rename(2): atomic, like littlefs's rename on a real board.
    size_t l1, l2;
    const char *p1 = mp_obj_str_get_data(from_in, &l1);
    const char *p2 = mp_obj_str_get_data(to_in, &l2);
    uint32_t a[4] = {(uint32_t)p1, (uint32_t)l1, (uint32_t)p2, (uint32_t)l2};
    if (semi(SYS_RENAME, a) != 0) {
        mp_raise_OSError(semi_errno());
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(smeter_rename_obj, smeter_rename);

static mp_obj_t smeter_stat_size(mp_obj_t path_in) {
    // Size of a host file, or -1 when it cannot be opened (absent).
    size_t len;
    const char *path = mp_obj_str_get_data(path_in, &len);
    uint32_t a[3] = {(uint32_t)path, 1, (uint32_t)len};
    int fd = semi(SYS_OPEN, a);
    if (fd < 0) {
        return MP_OBJ_NEW_SMALL_INT(-1);
    }
    uint32_t b[1] = {(uint32_t)fd};
    int n = semi(SYS_FLEN, b);
    semi(SYS_CLOSE, b);
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smeter_stat_size_obj, smeter_stat_size);

// ---- module -----------------------------------------------------------------------------

static const mp_rom_map_elem_t smeter_board_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_smeter_board) },
    { MP_ROM_QSTR(MP_QSTR_UART), MP_ROM_PTR(&smeter_uart_type) },
    { MP_ROM_QSTR(MP_QSTR_open), MP_ROM_PTR(&smeter_open_obj) },
    { MP_ROM_QSTR(MP_QSTR_remove), MP_ROM_PTR(&smeter_remove_obj) },
    { MP_ROM_QSTR(MP_QSTR_rename), MP_ROM_PTR(&smeter_rename_obj) },
    { MP_ROM_QSTR(MP_QSTR_stat_size), MP_ROM_PTR(&smeter_stat_size_obj) },
    { MP_ROM_QSTR(MP_QSTR_wall_ms), MP_ROM_PTR(&smeter_wall_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_set_wall_ms), MP_ROM_PTR(&smeter_set_wall_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_wall_synced), MP_ROM_PTR(&smeter_wall_synced_obj) },
    { MP_ROM_QSTR(MP_QSTR_sync_wall), MP_ROM_PTR(&smeter_sync_wall_obj) },
    { MP_ROM_QSTR(MP_QSTR_exit), MP_ROM_PTR(&smeter_exit_obj) },
    { MP_ROM_QSTR(MP_QSTR_elapsed_ms), MP_ROM_PTR(&smeter_elapsed_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep_ms), MP_ROM_PTR(&smeter_sleep_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_HEAP_SIZE), MP_ROM_INT(MICROPY_HEAP_SIZE) },
};
static MP_DEFINE_CONST_DICT(smeter_board_globals, smeter_board_globals_table);

const mp_obj_module_t smeter_board_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&smeter_board_globals,
};

MP_REGISTER_MODULE(MP_QSTR_smeter_board, smeter_board_module);
