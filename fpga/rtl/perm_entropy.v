`timescale 1ns / 1ps
// Rolling permutation entropy, one sample per cycle, hand-written
// Verilog-2005 (see sha256_leaf.v for why RTL by hand). The arithmetic is
// the core's fixed_point=True form: counts of the ordinal patterns in the
// window, S = sum T(count) kept by adding the table differences
// D(c) = T(c+1) - T(c), and H = floor((T(NP) - S) / NP) in units of 2^-32
// bits, NP = WINDOW - ORDER + 1 patterns per full window. The division by the
// constant NP is a multiply by a rounded-up reciprocal M and a shift SH
// (exact for every numerator below 2^NUM_BITS: Granlund and Montgomery 1994,
// M = ceil(2^SH / NP), SH = NUM_BITS + ceil(log2 NP)); rtl/params.py
// computes M, SH and T(NP) from the same table.
//
// Input: float32 samples (IEEE bits), delay 1, no NaN (the HLS kernel and
// the core leave NaN patterns out; this RTL does not). Output: one value per
// sample, LATENCY cycles later; all ones for the first WINDOW - 1 samples.
module perm_entropy #(
    parameter ORDER = 4,
    parameter WINDOW = 256,
    parameter NUM_BITS = 46,
    parameter [47:0] T_NP = 48'd0,
    parameter [47:0] M = 48'd0,
    parameter SH = 56,
    parameter DHEX = "dnlog2n.hex"
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        in_valid,
    input  wire [31:0] in_data,
    output reg         out_valid,
    output reg  [63:0] out_data
);
    localparam NP = WINDOW - ORDER + 1;
    localparam F = (ORDER == 3) ? 6 : (ORDER == 4) ? 24 : 120;
    localparam CW = 11;  // count width: NP <= 1024

    // Order-preserving integer key of a float (-0 and +0 alike).
    function [31:0] key(input [31:0] x);
        begin
            if (x[30:0] == 31'd0)
                key = 32'h80000000;
            else
                key = x[31] ? ~x : (x | 32'h80000000);
        end
    endfunction

    // ---- stage 0: the last ORDER samples, oldest in v[0]
    reg [31:0] v [0:ORDER-1];
    reg [31:0] tcount;          // samples taken (saturating)
    reg        s0_valid, s0_pat, s0_full;
    integer i, j;
    always @(posedge clk) begin
        if (rst) begin
            tcount <= 32'd0;
            s0_valid <= 1'b0;
        end else begin
            s0_valid <= in_valid;
            if (in_valid) begin
                for (i = 0; i < ORDER - 1; i = i + 1)
                    v[i] <= v[i + 1];
                v[ORDER - 1] <= key(in_data);
                if (tcount != 32'hffffffff)
                    tcount <= tcount + 32'd1;
                s0_pat <= tcount + 1 >= ORDER;
                s0_full <= tcount + 1 >= WINDOW;
            end
        end
    end

    // ---- stage 1: Lehmer code, c_i = #{j < i : v[j] > v[i]}, weights i!
    reg [6:0] code_c;
    reg [6:0] ci;
    always @* begin
        code_c = 7'd0;
        for (i = 1; i < ORDER; i = i + 1) begin
            ci = 7'd0;
            for (j = 0; j < i; j = j + 1)
                ci = ci + (v[j] > v[i] ? 7'd1 : 7'd0);
            code_c = code_c + ci * ((i == 1) ? 7'd1 : (i == 2) ? 7'd2 : (i == 3) ? 7'd6 : 7'd24);
        end
    end
    reg [6:0] s1_code;
    reg       s1_valid, s1_pat, s1_full;
    always @(posedge clk) begin
        s1_valid <= rst ? 1'b0 : s0_valid;
        s1_code <= code_c;
        s1_pat <= s0_pat;
        s1_full <= s0_full;
    end

    // ---- stage 2: the ring of the last NP codes (read before write)
    reg [6:0]  ring [0:NP-1];
    reg [10:0] ptr;
    reg [10:0] pushed;          // saturates at NP
    reg [6:0]  s2_new, s2_old;
    reg        s2_valid, s2_add, s2_del, s2_full;
    always @(posedge clk) begin
        if (rst) begin
            ptr <= 11'd0;
            pushed <= 11'd0;
            s2_valid <= 1'b0;
            s2_add <= 1'b0;
            s2_del <= 1'b0;
        end else begin
            s2_valid <= s1_valid;
            s2_add <= s1_valid && s1_pat;
            s2_del <= s1_valid && s1_pat && pushed == NP;
            s2_new <= s1_code;
            s2_full <= s1_full;
            if (s1_valid && s1_pat) begin
                ring[ptr] <= s1_code;
                ptr <= (ptr == NP - 1) ? 11'd0 : ptr + 11'd1;
                if (pushed != NP)
                    pushed <= pushed + 11'd1;
            end
        end
    end
    always @(posedge clk)
        s2_old <= ring[ptr];

    // ---- stage 2b: the ring's block-RAM output registered before the count
    // multiplexers (its clock-to-out was the critical path)
    reg [6:0] s2b_new, s2b_old;
    reg       s2b_valid, s2b_add, s2b_del, s2b_full;
    always @(posedge clk) begin
        if (rst) begin
            s2b_valid <= 1'b0;
            s2b_add <= 1'b0;
            s2b_del <= 1'b0;
        end else begin
            s2b_valid <= s2_valid;
            s2b_add <= s2_add;
            s2b_del <= s2_del;
        end
        s2b_new <= s2_new;
        s2b_old <= s2_old;
        s2b_full <= s2_full;
    end

    // ---- stage 3: counts; the table differences to add and remove
    reg [CW-1:0] cnt [0:F-1];
    reg [CW-1:0] s3_cn, s3_co;
    reg          s3_valid, s3_add, s3_del, s3_full;
    wire         same = s2b_add && s2b_del && s2b_new == s2b_old;
    always @(posedge clk) begin
        if (rst) begin
            for (i = 0; i < F; i = i + 1)
                cnt[i] <= {CW{1'b0}};
            s3_valid <= 1'b0;
            s3_add <= 1'b0;
            s3_del <= 1'b0;
        end else begin
            s3_valid <= s2b_valid;
            s3_full <= s2b_full;
            s3_add <= s2b_add && !same;
            s3_del <= s2b_del && !same;
            s3_cn <= cnt[s2b_new];
            s3_co <= cnt[s2b_old] - 1'b1;
            if (s2b_add && !same)
                cnt[s2b_new] <= cnt[s2b_new] + 1'b1;
            if (s2b_del && !same)
                cnt[s2b_old] <= cnt[s2b_old] - 1'b1;
        end
    end

    // ---- stage 4: D lookups (ROM), stage 5: S
    reg [35:0] D [0:WINDOW-1];
    initial $readmemh(DHEX, D, 0, WINDOW - 1);
    reg [35:0] s4_dadd, s4_ddel;
    reg        s4_valid, s4_full;
    always @(posedge clk) begin
        s4_valid <= rst ? 1'b0 : s3_valid;
        s4_full <= s3_full;
        s4_dadd <= s3_add ? D[s3_cn] : 36'd0;
        s4_ddel <= s3_del ? D[s3_co] : 36'd0;
    end
    reg [47:0] S;
    reg        s5_valid, s5_full;
    reg [47:0] s5_num;
    always @(posedge clk) begin
        if (rst) begin
            S <= 48'd0;
            s5_valid <= 1'b0;
        end else begin
            s5_valid <= s4_valid;
            s5_full <= s4_full;
            S <= S + s4_dadd - s4_ddel;
        end
    end
    // The numerator of the sample at stage 5 uses S after its update.
    wire [47:0] num = T_NP - S;

    // ---- stages 6-7: floor(num / NP) = (num * M) >> SH
    reg [47:0] s6_num;
    reg        s6_valid, s6_full;
    reg [95:0] s7_prod;
    reg        s7_valid, s7_full;
    always @(posedge clk) begin
        s6_valid <= rst ? 1'b0 : s5_valid;
        s6_full <= s5_full;
        s6_num <= num;
        s7_valid <= rst ? 1'b0 : s6_valid;
        s7_full <= s6_full;
        s7_prod <= s6_num * M;
        out_valid <= rst ? 1'b0 : s7_valid;
        out_data <= s7_full ? {24'd0, s7_prod[SH +: 40]} : 64'hffffffffffffffff;  // H < 2^35
    end
endmodule
