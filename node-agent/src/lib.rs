//! tug-agent: the node agent (kubelet).
