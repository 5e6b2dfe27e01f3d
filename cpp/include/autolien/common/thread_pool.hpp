// A small persistent thread pool for data-parallel kernels.
//
// Kernels call parallel_for with a range and a minimum chunk; the caller's
// thread takes part, so a pool of size 1 runs everything inline. Nested calls
// from a worker run serially instead of deadlocking.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace autolien {

class ThreadPool {
  public:
    explicit ThreadPool(std::size_t num_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Threads that work on a parallel_for, the caller included.
    [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

    // Calls fn(begin, end) over contiguous chunks covering [0, n). Returns when
    // every chunk is done; rethrows the first exception a chunk threw.
    void parallel_for(std::size_t n, std::size_t min_chunk,
                      const std::function<void(std::size_t, std::size_t)>& fn);

  private:
    void worker_loop();

    std::vector<std::thread> workers_;
    std::deque<std::function<void()>> tasks_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
};

// The process-wide pool. Its size comes from AUTOLIEN_NUM_THREADS, else the
// hardware concurrency. Kernels hold the returned pointer while they run, so
// set_num_threads from another thread never pulls a pool from under them.
std::shared_ptr<ThreadPool> global_pool();
std::size_t get_num_threads();
// Replaces the global pool; n == 0 restores the default.
void set_num_threads(std::size_t n);

} // namespace autolien
