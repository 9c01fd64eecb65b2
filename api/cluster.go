package api

import "time"

// Member is one controller server of a Raft cluster (`weft operator members`).
type Member struct {
	Name    string `json:"name"`    // the server's --name, its Raft ID
	Address string `json:"address"` // its Raft address
	API     string `json:"api,omitempty"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

// ServerSelf is what a server says of itself at GET /v1/cluster/self, so
// that servers forming a cluster learn each other's Raft addresses from
// their --listen addresses.
type ServerSelf struct {
	Name string `json:"name"`
	Raft string `json:"raft"`
	API  string `json:"api"`
}

// JoinCluster is the body of POST /v1/cluster/join: a server asking to be
// added as a voter.
type JoinCluster struct {
	Name string `json:"name"`
	Raft string `json:"raft"`
}

// AgentCertificateRequest is the body of POST /v1/cluster/certificate: a
// node agent, presenting the cluster's join token, asks for a certificate
// of its own.
type AgentCertificateRequest struct {
	Name string `json:"name"`
	CSR  string `json:"csr"` // PEM certificate request
}

// AgentCertificate is the answer: the agent's certificate and the CA's.
type AgentCertificate struct {
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM
}

// JoinToken is a rotated join token: the state keeps its hash; Token is
// there only in the answer to the rotation.
type JoinToken struct {
	Token     string    `json:"token,omitempty"`
	SHA256    string    `json:"sha256"`
	RotatedAt time.Time `json:"rotatedAt"`
}
