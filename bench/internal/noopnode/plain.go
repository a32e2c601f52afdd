package main

import (
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// plainStamp is the plain-remote side of the TLS benchmark: no TLS and no
// guard, but every message still needs the identity stamp the cores
// require (actors.PeerHeader). A dispatcher node stamps each stream with the
// runner id of the registration it carries first; a runner node stamps
// everything as the dispatcher. It trusts what peers claim: benchmarks only.
func plainStamp(mode string) grpc.ServerOption {
	return grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		s := &stampStream{ServerStream: ss}
		if mode != "dispatcher" {
			s.stamp = "dispatcher/bench"
		}
		return h(srv, s)
	})
}

var registerRunner = string(proto.MessageName(&messages.RegisterRunner{}))

type stampStream struct {
	grpc.ServerStream
	stamp string
}

func (s *stampStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	b := m.(*remote.RemoteMessage).GetMessageBatch()
	if b == nil {
		return nil
	}
	for _, e := range b.Envelopes {
		if s.stamp == "" && b.TypeNames[e.TypeId] == registerRunner {
			var r messages.RegisterRunner
			if proto.Unmarshal(e.MessageData, &r) == nil {
				s.stamp = string(actors.RoleRunner) + "/" + r.RunnerId
			}
		}
		e.MessageHeader = &remote.MessageHeader{HeaderData: map[string]string{actors.PeerHeader: s.stamp}}
	}
	return nil
}
