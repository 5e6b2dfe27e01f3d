# The Vitis HLS flow shared by every top's run_hls.tcl: C-simulation,
# synthesis, co-simulation and export, each switched by a variable.
#
#   vitis_hls -f run_hls.tcl                      C-simulation and synthesis
#   CSIM=1 CSYNTH=1 COSIM=1 EXPORT=1 vitis_hls -f run_hls.tcl
#   PART=xcu250-figd2104-2L-e CLKP=3.33 vitis_hls -f run_hls.tcl
#
# Steps and target are variables (environment, else the defaults below), as
# in Vitis Libraries' L1 flows. Nothing here has been run: no vendor tool is
# available where this was written (fpga/README.md). Paths are relative to
# fpga/hls/<top>/, the folder each run_hls.tcl is run from after
# `make -C fpga golden` (the testbenches read fpga/build/golden).
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
set FLAGS  "-std=c++17 -I../../include -I../../top -I../../tb -I../../../cpp/include "

# top: the function; tb: the testbench source in fpga/tb; argv: its
# arguments (golden files under $G).
proc run_flow {top tb argv} {
    global PART CLKP CSIM CSYNTH COSIM EXPORT FLAGS
    open_project -reset proj_$top
    set_top $top
    add_files ../../top/$top.cpp -cflags $FLAGS
    add_files -tb ../../tb/$tb -cflags "$FLAGS -DAUTOLIEN_FPGA_SEPARATE_TOP"
    open_solution -reset sol -flow_target vivado
    set_part $PART
    create_clock -period $CLKP -name default
    if {$CSIM}   { csim_design -argv $argv }
    if {$CSYNTH} { csynth_design }
    if {$COSIM}  { cosim_design -argv $argv }
    if {$EXPORT} { export_design -format ip_catalog }
}
