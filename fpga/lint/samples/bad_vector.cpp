// expect: std-container
#include <vector>

int bad_vector(int n) {
    std::vector<int> v(4, n);
    return v[0];
}
