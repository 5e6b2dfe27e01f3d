# Vitis HLS flow for perm_entropy_top: rolling permutation entropy, order PE_ORDER, window PE_WINDOW.
# Run from this folder after `make -C fpga golden`; the steps, part and clock
# are variables (see ../common.tcl):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
source ../common.tcl
run_flow perm_entropy_top csim_perm_entropy.cpp "--order 5 --window 256 --in $G/gauss.f32 --check $G/gauss_perm_o5_w256.u64"
exit
