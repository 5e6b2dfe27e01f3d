# Vitis HLS flow for merkle_leaf_axis: RFC 6962 leaf hashes over AXI-Stream (SHA-256; -DMERKLE_HASH=1 -DTB_HASH=1 in the flags for Keccak-256).
# Run from this folder after `make -C fpga golden`; the steps, part and clock
# are variables (see ../common.tcl):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
source ../common.tcl
run_flow merkle_leaf_axis csim_hash.cpp "--leaf --in $G/random.rec --check $G/random_leaf_sha256.md"
exit
