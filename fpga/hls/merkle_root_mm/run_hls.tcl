# Vitis HLS flow for merkle_root_mm: batch leaf hashing over m_axi and the RFC 6962 subtree root.
# Run from this folder after `make -C fpga golden`; the steps, part and clock
# are variables (see ../common.tcl):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
source ../common.tcl
run_flow merkle_root_mm csim_merkle_root.cpp "--in $G/random.rec --check $G/random_root_sha256.md"
exit
