#include "share/proto/messages.h"

namespace peertun::share::proto {

Op op_of(const RequestBody& body) {
  struct Visitor {
    Op operator()(const HelloRequest&) const { return Op::Hello; }
    Op operator()(const LookupRequest&) const { return Op::Lookup; }
    Op operator()(const GetAttrRequest&) const { return Op::GetAttr; }
    Op operator()(const ReadDirRequest&) const { return Op::ReadDir; }
    Op operator()(const OpenRequest&) const { return Op::Open; }
    Op operator()(const ReadRequest&) const { return Op::Read; }
    Op operator()(const ReadLinkRequest&) const { return Op::ReadLink; }
    Op operator()(const StatFsRequest&) const { return Op::StatFs; }
    Op operator()(const ReleaseRequest&) const { return Op::Release; }
    Op operator()(const ForgetRequest&) const { return Op::Forget; }
  };
  return std::visit(Visitor{}, body);
}

Response error_response(RequestId id, Op op, int error) {
  Response response;
  response.id = id;
  response.op = op;
  response.error = static_cast<std::uint32_t>(error);
  response.body = EmptyReply{};
  return response;
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxName && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace peertun::share::proto
