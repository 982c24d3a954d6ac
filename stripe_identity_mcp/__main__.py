from stripe_identity_mcp.cli import main

main()
