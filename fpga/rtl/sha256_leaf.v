`timescale 1ns / 1ps
// RFC 6962 leaf hasher, SHA-256(0x00 || record), hand-written Verilog-2005.
//
// Why hand-written RTL: no vendor HLS runs here, and the open flow (Icarus,
// Yosys, nextpnr) takes Verilog directly; the structure mirrors the HLS
// kernel (pad -> schedule -> rounds, one round per cycle) so its resources
// and Fmax are evidence for what the HLS design needs.
//
// Input: a byte stream, one record after another. in_last marks a record's
// final byte; a beat with in_last and in_empty carries no byte and ends an
// empty record. Output: out_valid for one cycle with out_hash, the digest as
// a big-endian integer (digest byte 0 in bits [255:248]).
//
// Throughput: the loader packs the next block while the compressor runs, so
// a block costs 66 cycles (handover, 64 rounds, final add): 64 bytes per 66
// cycles when the input keeps up.
module sha256_leaf (
    input  wire         clk,
    input  wire         rst,
    input  wire         in_valid,
    output wire         in_ready,
    input  wire [7:0]   in_data,
    input  wire         in_last,
    input  wire         in_empty,
    output reg          out_valid,
    output reg  [255:0] out_hash
);
    // ---------------------------------------------------------------- loader
    localparam L_PREFIX = 3'd0, L_DATA = 3'd1, L_PAD = 3'd2, L_ZERO = 3'd3, L_LEN = 3'd4;
    reg [2:0]   lstate;
    reg [511:0] blk;       // bytes shift in at the bottom; word 0 ends on top
    reg [5:0]   bpos;      // byte position in the block
    reg [60:0]  len;       // message bytes so far (prefix included)
    reg         full;      // blk holds a complete block for the compressor
    reg         full_last; // ... and it is the message's last
    reg         full_first; // ... and it is the message's first

    reg         lfirst;    // the block being packed is the message's first

    wire [63:0] bitlen = {len, 3'b000};
    assign in_ready = (lstate == L_DATA) && !full;

    reg        produce;
    reg [7:0]  b;
    reg [2:0]  lnext;
    always @* begin
        produce = 1'b0;
        b = 8'h00;
        lnext = lstate;
        if (!full) begin
            case (lstate)
            L_PREFIX: begin produce = 1'b1; b = 8'h00; lnext = L_DATA; end
            L_DATA: if (in_valid) begin
                if (in_empty) begin
                    lnext = L_PAD;
                end else begin
                    produce = 1'b1;
                    b = in_data;
                    if (in_last) lnext = L_PAD;
                end
            end
            L_PAD: begin produce = 1'b1; b = 8'h80; lnext = (bpos == 6'd55) ? L_LEN : L_ZERO; end
            L_ZERO: begin produce = 1'b1; b = 8'h00; if (bpos == 6'd55) lnext = L_LEN; end
            default: begin // L_LEN
                produce = 1'b1;
                b = bitlen[8 * (63 - bpos) +: 8];
                if (bpos == 6'd63) lnext = L_PREFIX;
            end
            endcase
        end
    end

    // -------------------------------------------------------------- compressor
    reg [31:0] H [0:7];
    reg [31:0] a, bb, c, d, e, f, g, h;
    reg [511:0] W;  // W[511:480] = W[t], the rest W[t+1..t+15]
    reg [5:0]  t;
    reg        busy, fin, cur_last;
    wire       handover = full && !busy && !fin;

    function [31:0] rotr(input [31:0] x, input integer n);
        rotr = (x >> n) | (x << (32 - n));
    endfunction

    reg [31:0] K;
    always @* begin
        case (t)
        6'd0: K = 32'h428a2f98; 6'd1: K = 32'h71374491; 6'd2: K = 32'hb5c0fbcf; 6'd3: K = 32'he9b5dba5;
        6'd4: K = 32'h3956c25b; 6'd5: K = 32'h59f111f1; 6'd6: K = 32'h923f82a4; 6'd7: K = 32'hab1c5ed5;
        6'd8: K = 32'hd807aa98; 6'd9: K = 32'h12835b01; 6'd10: K = 32'h243185be; 6'd11: K = 32'h550c7dc3;
        6'd12: K = 32'h72be5d74; 6'd13: K = 32'h80deb1fe; 6'd14: K = 32'h9bdc06a7; 6'd15: K = 32'hc19bf174;
        6'd16: K = 32'he49b69c1; 6'd17: K = 32'hefbe4786; 6'd18: K = 32'h0fc19dc6; 6'd19: K = 32'h240ca1cc;
        6'd20: K = 32'h2de92c6f; 6'd21: K = 32'h4a7484aa; 6'd22: K = 32'h5cb0a9dc; 6'd23: K = 32'h76f988da;
        6'd24: K = 32'h983e5152; 6'd25: K = 32'ha831c66d; 6'd26: K = 32'hb00327c8; 6'd27: K = 32'hbf597fc7;
        6'd28: K = 32'hc6e00bf3; 6'd29: K = 32'hd5a79147; 6'd30: K = 32'h06ca6351; 6'd31: K = 32'h14292967;
        6'd32: K = 32'h27b70a85; 6'd33: K = 32'h2e1b2138; 6'd34: K = 32'h4d2c6dfc; 6'd35: K = 32'h53380d13;
        6'd36: K = 32'h650a7354; 6'd37: K = 32'h766a0abb; 6'd38: K = 32'h81c2c92e; 6'd39: K = 32'h92722c85;
        6'd40: K = 32'ha2bfe8a1; 6'd41: K = 32'ha81a664b; 6'd42: K = 32'hc24b8b70; 6'd43: K = 32'hc76c51a3;
        6'd44: K = 32'hd192e819; 6'd45: K = 32'hd6990624; 6'd46: K = 32'hf40e3585; 6'd47: K = 32'h106aa070;
        6'd48: K = 32'h19a4c116; 6'd49: K = 32'h1e376c08; 6'd50: K = 32'h2748774c; 6'd51: K = 32'h34b0bcb5;
        6'd52: K = 32'h391c0cb3; 6'd53: K = 32'h4ed8aa4a; 6'd54: K = 32'h5b9cca4f; 6'd55: K = 32'h682e6ff3;
        6'd56: K = 32'h748f82ee; 6'd57: K = 32'h78a5636f; 6'd58: K = 32'h84c87814; 6'd59: K = 32'h8cc70208;
        6'd60: K = 32'h90befffa; 6'd61: K = 32'ha4506ceb; 6'd62: K = 32'hbef9a3f7; default: K = 32'hc67178f2;
        endcase
    end

    // Schedule: W[t+16] from W[t], W[t+1], W[t+9], W[t+14].
    wire [31:0] w0 = W[511:480], w1 = W[479:448], w9 = W[223:192], w14 = W[63:32];
    wire [31:0] s0 = rotr(w1, 7) ^ rotr(w1, 18) ^ (w1 >> 3);
    wire [31:0] s1 = rotr(w14, 17) ^ rotr(w14, 19) ^ (w14 >> 10);
    wire [31:0] wnext = w0 + s0 + w9 + s1;
    // Round t.
    wire [31:0] S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    wire [31:0] ch = (e & f) ^ (~e & g);
    wire [31:0] t1 = h + S1 + ch + K + w0;
    wire [31:0] S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    wire [31:0] maj = (a & bb) ^ (a & c) ^ (bb & c);

    localparam [255:0] IV = {32'h6a09e667, 32'hbb67ae85, 32'h3c6ef372, 32'ha54ff53a,
                             32'h510e527f, 32'h9b05688c, 32'h1f83d9ab, 32'h5be0cd19};
    integer i;
    always @(posedge clk) begin
        out_valid <= 1'b0;
        if (rst) begin
            lstate <= L_PREFIX;
            bpos <= 6'd0;
            len <= 61'd0;
            full <= 1'b0;
            full_last <= 1'b0;
            full_first <= 1'b0;
            lfirst <= 1'b1;
            busy <= 1'b0;
            fin <= 1'b0;
            t <= 6'd0;
            cur_last <= 1'b0;
        end else begin
            // Loader.
            lstate <= lnext;
            if (produce) begin
                blk <= {blk[503:0], b};
                bpos <= bpos + 6'd1;
                if (lstate == L_PREFIX || lstate == L_DATA)
                    len <= (lstate == L_PREFIX) ? 61'd1 : len + 61'd1;
                if (bpos == 6'd63) begin
                    full <= 1'b1;
                    full_last <= (lstate == L_LEN);
                    full_first <= lfirst;
                    lfirst <= (lstate == L_LEN);
                end
            end
            // Compressor.
            if (handover) begin
                full <= 1'b0;
                W <= blk;
                {a, bb, c, d, e, f, g, h} <= full_first ? IV :
                    {H[0], H[1], H[2], H[3], H[4], H[5], H[6], H[7]};
                if (full_first)
                    for (i = 0; i < 8; i = i + 1) H[i] <= IV[255 - 32 * i -: 32];
                cur_last <= full_last;
                busy <= 1'b1;
                t <= 6'd0;
            end else if (busy) begin
                h <= g;
                g <= f;
                f <= e;
                e <= d + t1;
                d <= c;
                c <= bb;
                bb <= a;
                a <= t1 + S0 + maj;
                W <= {W[479:0], wnext};
                t <= t + 6'd1;
                if (t == 6'd63) begin
                    busy <= 1'b0;
                    fin <= 1'b1;
                end
            end else if (fin) begin
                fin <= 1'b0;
                H[0] <= H[0] + a;
                H[1] <= H[1] + bb;
                H[2] <= H[2] + c;
                H[3] <= H[3] + d;
                H[4] <= H[4] + e;
                H[5] <= H[5] + f;
                H[6] <= H[6] + g;
                H[7] <= H[7] + h;
                if (cur_last) begin
                    out_valid <= 1'b1;
                    out_hash <= {H[0] + a, H[1] + bb, H[2] + c, H[3] + d,
                                 H[4] + e, H[5] + f, H[6] + g, H[7] + h};
                end
            end
        end
    end
endmodule
