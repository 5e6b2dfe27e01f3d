# Vitis HLS flow for kf_top: constant-velocity Kalman step with the Mahalanobis gate (double precision).
# Run from this folder after `make -C fpga golden`; the steps, part and clock
# are variables (see ../common.tcl):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
source ../common.tcl
run_flow kf_top csim_kf.cpp "--config $G/kf_config.f64 --in $G/kf_rtklib_py_in.f64 --check $G/kf_rtklib_py_core.f64"
exit
