// Package pki is Volt's certificate authority and node credentials: the
// cluster CA, certificates that name a node's role and name (a URI SAN
// volt://ROLE/NAME plus the node's host names and IPs), the files they live
// in, join tokens that pin the CA, and the revocation list.
//
// Every remote connection between Volt processes is mutual TLS 1.3 with
// certificates from this package; cluster turns them into gRPC credentials
// and reads the authenticated identity back from the peer's certificate.
//
// pki must not import actors, cluster, gitexec, sim or Proto.Actor.
package pki
