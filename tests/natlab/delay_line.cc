// natlab_delay_line: a fixed-delay line for the NAT lab's WAN links.
//
// The lab's kernel has no sch_netem, so delay is added in user space: iptables sends the
// packets of a link to one or more NFQUEUE queues, and this program holds each packet for
// --delay-ms before it re-injects it with an ACCEPT verdict. The packet itself never leaves
// the kernel (NFQNL_COPY_META): we only remember its id and issue the verdict later.
//
//   natlab_delay_line --delay-ms 25 --queue 1 --queue 2 [--max-held 4096]
//
// Prints one `ready ...` line on stdout once every queue is bound (the lab waits for it
// before it points iptables at the queues), and one `stats ...` line when it exits.
// SIGTERM / SIGINT: every held packet is released (accepted) at once, then it exits 0.
// Exit codes: 0 after a signal, 1 on a runtime failure (cannot bind a queue: not root,
// or the queue number is taken), 2 on bad arguments.

// <arpa/inet.h> before the netfilter headers: they pull in <linux/in.h>, which clashes
// with glibc's <netinet/in.h> if that comes second.
#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// More than one link's worth of bursts at lab rates; beyond it we drop, as a router whose
// buffer is full would. The kernel queue gets the same bound (nfq_set_queue_maxlen), so a
// slow verdict loop cannot pile packets up without limit either.
constexpr std::uint32_t kDefaultMaxHeld = 4096;
// The lab's WAN links add tens of milliseconds; a minute is surely a typo.
constexpr std::chrono::milliseconds kMaxDelay{60'000};
// Netlink receive buffer: with COPY_META each notification is ~100 bytes, so this holds
// far more notifications than the queue bound allows, and ENOBUFS stays theoretical.
constexpr unsigned kSocketBufferBytes = 8U << 20U;
// An upper bound on one poll() so a lost wake-up can never stall a verdict for long.
constexpr std::chrono::milliseconds kMaxPollWait{200};

struct Held {
  Clock::time_point due;
  nfq_q_handle* queue;
  std::uint32_t id;
};

struct Options {
  std::chrono::milliseconds delay{0};
  std::vector<std::uint16_t> queues;
  std::uint32_t max_held = kDefaultMaxHeld;
};

struct State {
  std::chrono::milliseconds delay{0};
  std::uint32_t max_held = kDefaultMaxHeld;
  // FIFO: the delay is constant, so due times are non-decreasing in arrival order.
  std::deque<Held> held;
  std::uint64_t delayed = 0;
  std::uint64_t dropped = 0;
  std::uint64_t verdict_errors = 0;
};

volatile sig_atomic_t g_stop = 0;

void on_signal(int /*signo*/) { g_stop = 1; }

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end) {
    return std::nullopt;
  }
  return value;
}

void usage(const char* why) {
  std::fprintf(stderr,
               "natlab_delay_line: %s\n"
               "usage: natlab_delay_line --delay-ms MS --queue N [--queue N ...] "
               "[--max-held COUNT]\n",
               why);
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options opts;
  bool have_delay = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) {
      usage(("missing value after " + std::string(flag)).c_str());
      return std::nullopt;
    }
    const std::string_view value = argv[++i];
    if (flag == "--delay-ms") {
      auto ms = parse_number<std::uint32_t>(value);
      if (!ms || std::chrono::milliseconds(*ms) > kMaxDelay) {
        usage("--delay-ms wants a whole number of milliseconds, 0..60000");
        return std::nullopt;
      }
      opts.delay = std::chrono::milliseconds(*ms);
      have_delay = true;
    } else if (flag == "--queue") {
      auto num = parse_number<std::uint16_t>(value);
      if (!num) {
        usage("--queue wants a queue number, 0..65535");
        return std::nullopt;
      }
      opts.queues.push_back(*num);
    } else if (flag == "--max-held") {
      auto count = parse_number<std::uint32_t>(value);
      if (!count || *count == 0 || *count > 1'000'000) {
        usage("--max-held wants a count, 1..1000000");
        return std::nullopt;
      }
      opts.max_held = *count;
    } else {
      usage(("unknown flag " + std::string(flag)).c_str());
      return std::nullopt;
    }
  }
  if (!have_delay || opts.queues.empty()) {
    usage("--delay-ms and at least one --queue are required");
    return std::nullopt;
  }
  return opts;
}

int on_packet(nfq_q_handle* queue, nfgenmsg* /*msg*/, nfq_data* data, void* user) {
  auto* state = static_cast<State*>(user);
  const nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(data);
  if (header == nullptr) {
    return 0;
  }
  const std::uint32_t id = ntohl(header->packet_id);
  if (state->held.size() >= state->max_held) {
    ++state->dropped;
    if (nfq_set_verdict(queue, id, NF_DROP, 0, nullptr) < 0) {
      ++state->verdict_errors;
    }
    return 0;
  }
  state->held.push_back(Held{Clock::now() + state->delay, queue, id});
  ++state->delayed;
  return 0;
}

void release(State& state, Clock::time_point now, bool everything) {
  while (!state.held.empty() && (everything || state.held.front().due <= now)) {
    const Held& h = state.held.front();
    if (nfq_set_verdict(h.queue, h.id, NF_ACCEPT, 0, nullptr) < 0) {
      ++state.verdict_errors;
    }
    state.held.pop_front();
  }
}

int poll_timeout_ms(const State& state, Clock::time_point now) {
  if (state.held.empty()) {
    return static_cast<int>(kMaxPollWait.count());
  }
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(state.held.front().due - now);
  if (wait.count() < 0) {
    return 0;
  }
  return static_cast<int>(std::min(wait, kMaxPollWait).count());
}

int run(const Options& opts) {
  State state;
  state.delay = opts.delay;
  state.max_held = opts.max_held;

  nfq_handle* handle = nfq_open();
  if (handle == nullptr) {
    std::fprintf(stderr, "natlab_delay_line: nfq_open failed: %s (needs root)\n",
                 std::strerror(errno));
    return 1;
  }
  std::vector<nfq_q_handle*> queues;
  auto close_all = [&] {
    for (nfq_q_handle* q : queues) {
      nfq_destroy_queue(q);
    }
    nfq_close(handle);
  };
  for (std::uint16_t num : opts.queues) {
    nfq_q_handle* q = nfq_create_queue(handle, num, &on_packet, &state);
    if (q == nullptr) {
      std::fprintf(stderr, "natlab_delay_line: cannot bind queue %u: %s (taken, or not root?)\n",
                   num, std::strerror(errno));
      close_all();
      return 1;
    }
    queues.push_back(q);
    // Only the packet id comes to user space; the packet waits in the kernel.
    if (nfq_set_mode(q, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(q, opts.max_held) < 0) {
      std::fprintf(stderr, "natlab_delay_line: cannot configure queue %u: %s\n", num,
                   std::strerror(errno));
      close_all();
      return 1;
    }
  }
  nfnl_rcvbufsiz(nfq_nfnlh(handle), kSocketBufferBytes);
  const int fd = nfq_fd(handle);
  // Non-blocking so one wake-up can drain every notification that is waiting.
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
    std::fprintf(stderr, "natlab_delay_line: fcntl: %s\n", std::strerror(errno));
    close_all();
    return 1;
  }

  std::printf("ready delay_ms=%lld queues=", static_cast<long long>(opts.delay.count()));
  for (std::size_t i = 0; i < opts.queues.size(); ++i) {
    std::printf("%s%u", i == 0 ? "" : ",", opts.queues[i]);
  }
  std::printf("\n");
  std::fflush(stdout);

  std::vector<char> buffer(64 * 1024);
  int status = 0;
  while (g_stop == 0) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, poll_timeout_ms(state, Clock::now()));
    if (ready < 0 && errno != EINTR) {
      std::fprintf(stderr, "natlab_delay_line: poll: %s\n", std::strerror(errno));
      status = 1;
      break;
    }
    if (ready > 0) {
      // Drain everything queued so far; each recv is one or more netlink messages.
      for (int i = 0; i < 1024; ++i) {
        const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) {
          if (n < 0 && errno == ENOBUFS) {
            // A lost notification leaves its packet in the kernel queue until we exit
            // (then the kernel drops it); say so rather than hide it.
            std::fprintf(stderr, "natlab_delay_line: netlink overrun, notifications lost\n");
            continue;
          }
          break;  // EAGAIN: drained; EINTR: the loop condition decides.
        }
        nfq_handle_packet(handle, buffer.data(), static_cast<int>(n));
      }
    }
    release(state, Clock::now(), false);
  }
  // Never leave a packet stranded in the kernel queue when we go.
  release(state, Clock::now(), true);
  std::printf("stats delayed=%llu dropped=%llu verdict_errors=%llu\n",
              static_cast<unsigned long long>(state.delayed),
              static_cast<unsigned long long>(state.dropped),
              static_cast<unsigned long long>(state.verdict_errors));
  std::fflush(stdout);
  close_all();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> opts = parse_args(argc, argv);
  if (!opts) {
    return 2;
  }
  struct sigaction action{};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: poll() must return EINTR so the loop sees the stop flag at once.
  action.sa_flags = 0;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  return run(*opts);
}
