# USER_C_MODULES entry of the project's MPS2-AN385 board (firmware/boards/MPS2_AN385).
SMETER_BOARD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(SMETER_BOARD_DIR)/modsmeter_board.c
