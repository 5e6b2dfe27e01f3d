// expect: dynamic-memory
#include <stdlib.h>

int bad_malloc(int n) {
    int* p = static_cast<int*>(malloc(4 * sizeof(int)));
    p[0] = n;
    const int r = p[0];
    free(p);
    return r;
}
