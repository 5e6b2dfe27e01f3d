`timescale 1ns / 1ps
// Synthesis-only wrapper: the 256-bit digest leaves through a shift register
// one bit per cycle, so that the design fits the package's pins for place
// and route (the wrapper's 257 flip-flops are counted in the reports).
module sha256_leaf_pins (
    input  wire       clk,
    input  wire       rst,
    input  wire       in_valid,
    output wire       in_ready,
    input  wire [7:0] in_data,
    input  wire       in_last,
    input  wire       in_empty,
    output wire       out_valid,
    output wire       out_bit
);
    wire [255:0] hash;
    reg  [255:0] sr;
    sha256_leaf core (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .in_last(in_last), .in_empty(in_empty), .out_valid(out_valid), .out_hash(hash)
    );
    always @(posedge clk)
        sr <= out_valid ? hash : {sr[254:0], 1'b0};
    assign out_bit = sr[255];
endmodule
