# Vitis HLS flow for shannon_entropy_top: windowed Shannon entropy over SH_BINS bins, window SH_WINDOW.
# Run from this folder after `make -C fpga golden`; the steps, part and clock
# are variables (see ../common.tcl):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
source ../common.tcl
run_flow shannon_entropy_top csim_shannon_entropy.cpp "--window 256 --edges $G/gauss_edges.f64 --in $G/gauss.f32 --check $G/gauss_shannon_w256.u64"
exit
