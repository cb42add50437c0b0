// STUN Binding load generator for bench/stun_rps.py: keeps a window of requests
// outstanding against one server from several sockets, for a fixed time, and prints
// one JSON line with the responses per second it saw. Bounded in time and count.
//
// usage: stun_load HOST PORT SECONDS [WINDOW] [SOCKETS]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "stun/binding.h"
#include "stun/message.h"

int main(int argc, char** argv) {
  using namespace peertun;
  using Clock = std::chrono::steady_clock;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s HOST PORT SECONDS [WINDOW] [SOCKETS]\n", argv[0]);
    return 2;
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
    return 2;
  }
  const double seconds = std::atof(argv[3]);
  const int window = argc > 4 ? std::atoi(argv[4]) : 256;
  const int nsockets = argc > 5 ? std::atoi(argv[5]) : 4;
  constexpr int kBatch = 32;

  std::vector<int> fds;
  for (int i = 0; i < nsockets; ++i) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server);
    fds.push_back(fd);
  }
  // One request per socket is enough: the server answers each copy; transaction ids
  // are not checked here (the relay's correctness is tested elsewhere).
  stun::TransactionId txid{};
  for (std::size_t i = 0; i < txid.size(); ++i) {
    txid[i] = static_cast<std::uint8_t>(i * 7 + 1);
  }
  stun::BindingRequestOptions options;
  options.fingerprint = false;
  const auto request = stun::make_binding_request(txid, options);

  std::vector<int> outstanding(fds.size(), 0);
  const int per_socket_window = std::max(1, window / nsockets);
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t received_in_window = 0;
  const auto start = Clock::now();
  const auto warmup_end = start + std::chrono::milliseconds(500);
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  // Requests that vanish (dropped) would shrink the window forever; refill it on a
  // timer so loss cannot stall the run.
  auto last_refill = start;
  std::vector<mmsghdr> out(kBatch);
  std::vector<iovec> out_iov(kBatch);
  std::vector<mmsghdr> in(kBatch);
  std::vector<iovec> in_iov(kBatch);
  std::vector<std::array<std::uint8_t, 512>> in_buf(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    out_iov[i] = {const_cast<std::uint8_t*>(request.data()), request.size()};
    out[i].msg_hdr = {};
    out[i].msg_hdr.msg_iov = &out_iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
    in_iov[i] = {in_buf[i].data(), in_buf[i].size()};
    in[i].msg_hdr = {};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  std::vector<pollfd> pfds(fds.size());
  for (;;) {
    const auto now = Clock::now();
    if (now >= end) {
      break;
    }
    if (now - last_refill > std::chrono::milliseconds(200)) {
      std::fill(outstanding.begin(), outstanding.end(), 0);
      last_refill = now;
    }
    for (std::size_t s = 0; s < fds.size(); ++s) {
      int want = std::min(kBatch, per_socket_window - outstanding[s]);
      if (want <= 0) {
        continue;
      }
      int n = sendmmsg(fds[s], out.data(), static_cast<unsigned>(want), 0);
      if (n > 0) {
        outstanding[s] += n;
        sent += static_cast<std::uint64_t>(n);
      }
    }
    for (std::size_t s = 0; s < fds.size(); ++s) {
      pfds[s] = {fds[s], POLLIN, 0};
    }
    if (poll(pfds.data(), pfds.size(), 10) <= 0) {
      continue;
    }
    for (std::size_t s = 0; s < fds.size(); ++s) {
      if ((pfds[s].revents & POLLIN) == 0) {
        continue;
      }
      int n = recvmmsg(fds[s], in.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        continue;
      }
      outstanding[s] = std::max(0, outstanding[s] - n);
      received += static_cast<std::uint64_t>(n);
      if (Clock::now() >= warmup_end) {
        received_in_window += static_cast<std::uint64_t>(n);
      }
    }
  }
  const double measured = std::chrono::duration<double>(end - warmup_end).count();
  std::printf("{\"sent\": %llu, \"received\": %llu, \"responses_per_s\": %.0f}\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
              static_cast<double>(received_in_window) / measured);
  for (int fd : fds) {
    close(fd);
  }
  return 0;
}
