#include "share/exporter/node_table.h"

#include <functional>

namespace peertun::share::detail {

std::size_t NodeTable::IdentityHash::operator()(const Identity& id) const noexcept {
  std::size_t h = std::hash<std::uint64_t>{}(id.ino);
  h ^= std::hash<std::uint64_t>{}(id.dev) + 0x9e3779b97f4a7c15ULL + (h << 6U) + (h >> 2U);
  h ^= std::hash<std::uint32_t>{}(id.type) + 0x9e3779b97f4a7c15ULL + (h << 6U) + (h >> 2U);
  return h;
}

NodeTable::NodeTable(Identity root, std::size_t max_nodes) : max_nodes_(max_nodes) {
  nodes_.emplace(proto::kRootNode, Node{.path = ".", .identity = root, .lookups = 0});
  by_identity_.emplace(root, proto::kRootNode);
}

const NodeTable::Node* NodeTable::find(proto::NodeId id) const {
  const auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::optional<proto::NodeId> NodeTable::add_lookup(const Identity& identity, std::string path,
                                                   bool single_link) {
  if (const auto it = by_identity_.find(identity); it != by_identity_.end()) {
    if (it->second == proto::kRootNode) {
      return proto::kRootNode;  // e.g. a bind mount of the root inside itself
    }
    Node& node = nodes_.at(it->second);
    if (single_link && node.path != path) {
      return add_node(identity, std::move(path));
    }
    node.path = std::move(path);
    if (node.lookups < UINT64_MAX) {
      ++node.lookups;
    }
    return it->second;
  }
  return add_node(identity, std::move(path));
}

std::optional<proto::NodeId> NodeTable::add_node(const Identity& identity, std::string path) {
  if (nodes_.size() - 1 >= max_nodes_) {
    return std::nullopt;
  }
  const proto::NodeId id = next_id_++;
  nodes_.emplace(id, Node{.path = std::move(path), .identity = identity, .lookups = 1});
  by_identity_.insert_or_assign(identity, id);  // the newest node of an identity wins
  return id;
}

void NodeTable::forget(proto::NodeId id, std::uint64_t count) {
  if (id == proto::kRootNode) {
    return;
  }
  const auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    return;
  }
  if (count < it->second.lookups) {
    it->second.lookups -= count;
    return;
  }
  // An older node of a reused identity no longer owns the identity's entry.
  if (const auto owner = by_identity_.find(it->second.identity);
      owner != by_identity_.end() && owner->second == id) {
    by_identity_.erase(owner);
  }
  nodes_.erase(it);
}

void NodeTable::clear() {
  Node root = nodes_.at(proto::kRootNode);
  nodes_.clear();
  by_identity_.clear();
  by_identity_.emplace(root.identity, proto::kRootNode);
  nodes_.emplace(proto::kRootNode, std::move(root));
}

}  // namespace peertun::share::detail
