# Vitis HLS flow for perm_entropy_top: rolling permutation entropy, order PE_ORDER, window PE_WINDOW.
# Run from this folder after `make -C fpga golden` (the testbench reads the
# golden files in fpga/build/golden):
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
#   PART=xcu250-figd2104-2L-e CLKP=3.33 vitis_hls -f run_hls.tcl
#
# Steps and target are variables (environment, else the defaults below), as
# in Vitis Libraries' L1 flows. Nothing here has been run: no vendor tool is
# available where this was written (fpga/README.md).
proc env_or {name default} {
    if {[info exists ::env($name)]} { return $::env($name) }
    return $default
}
set PART   [env_or PART xczu9eg-ffvb1156-2-e]
set CLKP   [env_or CLKP 3.33]
set CSIM   [env_or CSIM 1]
set CSYNTH [env_or CSYNTH 1]
set COSIM  [env_or COSIM 0]
set EXPORT [env_or EXPORT 0]
set G      [file normalize ../../build/golden]
set FLAGS  "-std=c++17 -I../../include -I../../top -I../../tb -I../../../cpp/include -DPE_ORDER=5 -DPE_WINDOW=256"

open_project -reset proj_perm_entropy_top
set_top perm_entropy_top
add_files ../../top/perm_entropy_top.cpp -cflags $FLAGS
add_files -tb ../../tb/csim_perm_entropy.cpp -cflags "$FLAGS -DAUTOLIEN_FPGA_SEPARATE_TOP"
open_solution -reset sol -flow_target vivado
set_part $PART
create_clock -period $CLKP -name default
set ARGV "--order 5 --window 256 --in $G/gauss.f32 --check $G/gauss_perm_o5_w256.u64"
if {$CSIM}   { csim_design -argv $ARGV }
if {$CSYNTH} { csynth_design }
if {$COSIM}  { cosim_design -argv $ARGV }
if {$EXPORT} { export_design -format ip_catalog }
exit
