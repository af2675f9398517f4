#!/usr/bin/env bash
# Regenerates the Go code of the demo API in both example modules from
# tokenguard/example/v1/demo.proto, with pinned plugin versions:
#
#   examples/grpc/demov1              messages and gRPC stubs (protoc-gen-go, protoc-gen-go-grpc)
#   examples/connect/demov1           messages (protoc-gen-go)
#   examples/connect/demov1/demov1connect  Connect stubs (protoc-gen-connect-go)
#
# Each module gets its own copy of the messages so that neither depends on the
# other (the Connect example does not pull in grpc-go). Run it from anywhere:
# `go generate ./examples/grpc` or `bash examples/proto/generate.sh`. It needs
# protoc (3.21 or newer, with the well-known types: apt-get install
# protobuf-compiler) and Go; the plugins are built from the module proxy.
set -euo pipefail

PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PROTOC_GEN_CONNECT_GO=connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1

here=$(cd "$(dirname "$0")" && pwd)
examples=$(dirname "$here")
root=github.com/tokenguard/tokenguard/examples
proto=tokenguard/example/v1/demo.proto

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for tool in "$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$PROTOC_GEN_CONNECT_GO"; do
  GOBIN="$bin" GOWORK=off GOFLAGS=-mod=mod go install "$tool"
done
export PATH="$bin:$PATH"

includes=()
for dir in /usr/include /usr/local/include; do
  [ -f "$dir/google/protobuf/empty.proto" ] && includes+=("-I$dir")
done


rm -f "$examples"/grpc/demov1/*.pb.go "$examples"/connect/demov1/*.pb.go "$examples"/connect/demov1/demov1connect/*.go
mkdir -p "$examples/grpc/demov1" "$examples/connect/demov1/demov1connect"

grpcpkg="$root/grpc/demov1"
protoc -I"$here" "${includes[@]}" \
  --go_out="$examples/grpc" --go_opt=module="$root/grpc" --go_opt=M"$proto=$grpcpkg" \
  --go-grpc_out="$examples/grpc" --go-grpc_opt=module="$root/grpc" --go-grpc_opt=M"$proto=$grpcpkg" \
  "$here/$proto"

connectpkg="$root/connect/demov1"
protoc -I"$here" "${includes[@]}" \
  --go_out="$examples/connect" --go_opt=module="$root/connect" --go_opt=M"$proto=$connectpkg" \
  --connect-go_out="$examples/connect" --connect-go_opt=module="$root/connect" --connect-go_opt=M"$proto=$connectpkg" \
  "$here/$proto"

echo "generated:"
(cd "$examples" && ls grpc/demov1/*.go connect/demov1/*.go connect/demov1/demov1connect/*.go)
