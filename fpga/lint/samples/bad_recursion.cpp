// expect: recursion
// Mutual recursion: Vitis HLS cannot synthesize it.
int odd_depth(int n);

int even_depth(int n) {
    return n == 0 ? 0 : odd_depth(n - 1) + 1;
}

int odd_depth(int n) {
    return n == 0 ? 1 : even_depth(n - 1) + 1;
}

int bad_recursion(int n) {
    return even_depth(n & 7);
}
