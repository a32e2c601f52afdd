package messages

import "slices"

// ProtocolVersion is the version of the wire contract this binary speaks.
// Raise it on any incompatible change to volt.proto.
const ProtocolVersion int32 = 1

// SupportedVersions lists the protocol versions this binary accepts from peers.
var SupportedVersions = []int32{ProtocolVersion}

// Supported reports whether a peer speaking version v can be accepted.
func Supported(v int32) bool { return slices.Contains(SupportedVersions, v) }
