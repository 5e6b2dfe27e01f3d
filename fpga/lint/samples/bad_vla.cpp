// expect: vla
int bad_vla(int n, int x) {
    int buf[n & 15 ? n & 15 : 1];
    buf[0] = x;
    return buf[0];
}
