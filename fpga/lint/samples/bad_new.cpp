// expect: dynamic-memory
int bad_new(int n) {
    int* p = new int[4];
    p[0] = n;
    const int r = p[0];
    delete[] p;
    return r;
}
