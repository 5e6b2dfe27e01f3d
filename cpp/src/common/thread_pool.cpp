#include "autolien/common/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

namespace autolien {

namespace {

thread_local bool t_in_worker = false;

std::size_t default_threads() {
    if (const char* env = std::getenv("AUTOLIEN_NUM_THREADS")) {
        try {
            const long v = std::stol(env);
            if (v > 0)
                return static_cast<std::size_t>(v);
        } catch (const std::exception&) {
            // An unparsable value falls back to the hardware count.
        }
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : hc;
}

std::mutex g_pool_mu;
std::shared_ptr<ThreadPool> g_pool;

} // namespace

ThreadPool::ThreadPool(std::size_t num_threads) {
    const std::size_t extra = num_threads > 1 ? num_threads - 1 : 0;
    workers_.reserve(extra);
    for (std::size_t i = 0; i < extra; ++i)
        workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        const std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
        t.join();
}

void ThreadPool::worker_loop() {
    t_in_worker = true;
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
            if (stop_ && tasks_.empty())
                return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

void ThreadPool::parallel_for(std::size_t n, std::size_t min_chunk,
                              const std::function<void(std::size_t, std::size_t)>& fn) {
    if (n == 0)
        return;
    min_chunk = std::max<std::size_t>(min_chunk, 1);
    std::size_t parts = std::min(size(), (n + min_chunk - 1) / min_chunk);
    if (parts <= 1 || t_in_worker) {
        fn(0, n);
        return;
    }
    // Over-split a little so that uneven chunks balance out.
    parts = std::min(n, parts * 4);
    const std::size_t chunk = (n + parts - 1) / parts;
    parts = (n + chunk - 1) / chunk;

    // Shared state outlives this frame: a helper that starts after every chunk
    // is taken only reads `next` and leaves, so the caller need not wait for it.
    struct Job {
        std::atomic<std::size_t> next{0};
        std::atomic<std::size_t> done{0};
        std::mutex mu;
        std::condition_variable cv;
        std::exception_ptr first_error;
    };
    auto job = std::make_shared<Job>();
    const auto* fn_ptr = &fn;

    auto run_chunks = [job, fn_ptr, parts, chunk, n] {
        for (;;) {
            const std::size_t i = job->next.fetch_add(1);
            if (i >= parts)
                break;
            const std::size_t b = i * chunk;
            const std::size_t e = std::min(n, b + chunk);
            try {
                (*fn_ptr)(b, e);
            } catch (...) {
                const std::lock_guard<std::mutex> lock(job->mu);
                if (!job->first_error)
                    job->first_error = std::current_exception();
            }
            if (job->done.fetch_add(1) + 1 == parts) {
                const std::lock_guard<std::mutex> lock(job->mu);
                job->cv.notify_all();
            }
        }
    };

    const std::size_t helpers = std::min(workers_.size(), parts - 1);
    {
        const std::lock_guard<std::mutex> lock(mu_);
        for (std::size_t i = 0; i < helpers; ++i)
            tasks_.emplace_back(run_chunks);
    }
    cv_.notify_all();
    run_chunks();
    std::exception_ptr first_error;
    {
        std::unique_lock<std::mutex> lock(job->mu);
        job->cv.wait(lock, [&] { return job->done.load() == parts; });
        first_error = job->first_error;
    }
    if (first_error)
        std::rethrow_exception(first_error);
}

std::shared_ptr<ThreadPool> global_pool() {
    const std::lock_guard<std::mutex> lock(g_pool_mu);
    if (!g_pool)
        g_pool = std::make_shared<ThreadPool>(default_threads());
    return g_pool;
}

std::size_t get_num_threads() {
    return global_pool()->size();
}

void set_num_threads(std::size_t n) {
    auto fresh = std::make_shared<ThreadPool>(n == 0 ? default_threads() : n);
    std::shared_ptr<ThreadPool> old;
    {
        const std::lock_guard<std::mutex> lock(g_pool_mu);
        old = std::move(g_pool);
        g_pool = std::move(fresh);
    }
    // `old` joins its workers here, outside the lock, once no kernel holds it.
}

} // namespace autolien
