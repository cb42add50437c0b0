#include "client/stun_client.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "base/random.h"

namespace peertun::client {
namespace {

const char* message(int ev) noexcept {
  switch (static_cast<StunErrc>(ev)) {
    case StunErrc::Timeout:
      return "no STUN answer (is UDP to the relay blocked?)";
    case StunErrc::ErrorResponse:
      return "the STUN server answered with an error";
  }
  return "unknown STUN client error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.client.stun", message);

}  // namespace

const boost::system::error_category& stun_client_category() { return kCategory; }

io::Task<base::Result<stun::BindingResponse>> stun_binding(io::UdpSocket& socket,
                                                           base::SocketAddress server,
                                                           stun::BindingRequestOptions options,
                                                           std::chrono::milliseconds timeout) {
  using namespace boost::asio::experimental::awaitable_operators;
  using Clock = std::chrono::steady_clock;
  stun::TransactionId txid;
  base::random_bytes(txid);
  const auto request = stun::make_binding_request(txid, options);
  const auto deadline = Clock::now() + timeout;
  auto rto = std::chrono::duration_cast<Clock::duration>(kInitialRto);
  io::RecvBatch batch(8, 2048);
  auto executor = co_await io::asio::this_coro::executor;
  io::asio::steady_timer timer(executor);

  while (Clock::now() < deadline) {
    if (auto ec = socket.try_send(request, server); ec) {
      co_return ec;
    }
    const auto retry_at = std::min(deadline, Clock::now() + rto);
    rto *= 2;
    while (Clock::now() < retry_at) {
      timer.expires_at(retry_at);
      auto got = co_await (socket.receive(batch) || timer.async_wait(io::use_nothrow));
      if (got.index() == 1) {
        break;  // time to retransmit (or give up)
      }
      auto& received = std::get<0>(got);
      if (!received) {
        co_return received.error();
      }
      for (std::size_t i = 0; i < batch.size(); ++i) {
        auto view = stun::parse(batch[i].data);
        if (!view || view->transaction_id() != txid) {
          continue;
        }
        auto response = stun::parse_binding_response(*view);
        if (!response) {
          continue;
        }
        if (!response->success) {
          co_return StunErrc::ErrorResponse;
        }
        co_return std::move(*response);
      }
    }
  }
  co_return StunErrc::Timeout;
}

}  // namespace peertun::client
