"""The deployment phases as data and as actions: phases (parameters/phases.yaml, the plan),
rollout (start in order, wait on health), verify, kafka_topics, manifests and the local stack.
The phase notebooks' steps are in vextrus_nb/runbooks/deploy/phases.py."""
