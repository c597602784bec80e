# The project's board definition for ARM MPS2-AN385 (Cortex-M3) under qemu-system-arm:
# make -C <micropython>/ports/qemu BOARD_DIR=<this folder> USER_C_MODULES=<this folder>/cmodules
# (smeter firmware build does this out of tree; docs/flashing.md).
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an385

CFLAGS += -I$(BOARD_DIR)
# this folder's mpconfigport.h decides which modules exist: a change re-collects the module
# and qstr tables (an incremental build in a reused object folder would otherwise miss it)
QSTR_GLOBAL_DEPENDENCIES += $(BOARD_DIR)/mpconfigport.h
CFLAGS += -mthumb -mcpu=cortex-m3 -mfloat-abi=soft
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M3"'

LDSCRIPT = mcu/arm/mps2.ld

SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o

MPY_CROSS_FLAGS += -march=armv7m

MICROPY_HEAP_SIZE ?= 49152
