package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"google.golang.org/grpc"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// reflector calls methods as grpcurl does: it learns the schema from the
// server's reflection service, not from the generated code.
type reflector struct {
	conn  *grpc.ClientConn
	files map[string]*descriptorpb.FileDescriptorProto
}

func newReflector(conn *grpc.ClientConn) *reflector {
	return &reflector{conn: conn, files: map[string]*descriptorpb.FileDescriptorProto{}}
}

// ask sends one reflection request and returns the answer.
func (r *reflector) ask(ctx context.Context, req *reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error) {
	s, err := reflectionpb.NewServerReflectionClient(r.conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.CloseSend() }()
	if err := s.Send(req); err != nil {
		return nil, err
	}
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, fmt.Errorf("reflection: %d %s", e.ErrorCode, e.ErrorMessage)
	}
	return resp, nil
}

// services lists the services, sorted: grpcurl's "list".
func (r *reflector) services(ctx context.Context) ([]string, error) {
	resp, err := r.ask(ctx, &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, nil
}

// method resolves "package.Service/Method" through reflection.
func (r *reflector) method(ctx context.Context, name string) (protoreflect.MethodDescriptor, error) {
	svc, m, ok := cut(name)
	if !ok {
		return nil, fmt.Errorf("bad method %q", name)
	}
	resp, err := r.ask(ctx, &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc}})
	if err != nil {
		return nil, err
	}
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(b, fd); err != nil {
			return nil, err
		}
		r.files[fd.GetName()] = fd
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range r.files {
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(m))
	if md == nil {
		return nil, fmt.Errorf("service %s has no method %s", svc, m)
	}
	return md, nil
}

// call invokes a method with an empty request and returns its answers: one for a unary method, up to max
// for a server stream (then the client leaves).
func (r *reflector) call(ctx context.Context, name string, max int) ([]*dynamicpb.Message, error) {
	md, err := r.method(ctx, name)
	if err != nil {
		return nil, err
	}
	in := dynamicpb.NewMessage(md.Input()) // empty, as grpcurl sends without -d
	if !md.IsStreamingServer() {
		out := dynamicpb.NewMessage(md.Output())
		if err := r.conn.Invoke(ctx, "/"+name, in, out); err != nil {
			return nil, err
		}
		return []*dynamicpb.Message{out}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+name)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	_ = s.CloseSend()
	var outs []*dynamicpb.Message
	for len(outs) < max {
		out := dynamicpb.NewMessage(md.Output())
		if err := s.RecvMsg(out); err != nil {
			return outs, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

func cut(name string) (svc, method string, ok bool) {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i], name[i+1:], i > 0 && i < len(name)-1
		}
	}
	return "", "", false
}

// field reads a field of a dynamic message by name.
func field(m *dynamicpb.Message, name string) protoreflect.Value {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		return protoreflect.Value{}
	}
	return m.Get(fd)
}

func protoreflectNumber(n int) protoreflect.FieldNumber { return protoreflect.FieldNumber(n) }
